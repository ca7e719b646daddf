// The two react-dom entry points the React tests use (@types/react-dom is not installed).
declare module 'react-dom' {
  export function flushSync<R>(fn: () => R): R;
}
declare module 'react-dom/client' {
  import type { ReactNode } from 'react';
  export interface Root {
    render(children: ReactNode): void;
    unmount(): void;
  }
  export function createRoot(container: Element): Root;
}
