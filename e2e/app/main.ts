// A page that uses Outpost the way an application does: it imports the package by name, and
// Vite builds it with no Outpost-specific configuration. The tests drive it through `window.outpost`.
import * as outpost from 'outpost';

declare global {
  interface Window {
    outpost: typeof outpost;
  }
}

window.outpost = outpost;
document.getElementById('status')!.textContent = 'ready';
