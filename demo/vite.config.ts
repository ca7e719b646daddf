/**
 * The playground's build: an installable PWA made with vite-plugin-pwa in `injectManifest`
 * mode, so the service worker is our own code (demo/sw.ts: Workbox precaching, and the queue
 * that pushes offline changes in the background) with the list of files to precache injected
 * into it. `npm run demo` (demo/serve.ts) builds with this config and serves the result.
 *
 * The precache list must name `sqlite3.wasm` and the database worker's bundle: Workbox's
 * default globs take only js, css and html, and a reload offline without the WASM file opens
 * no database.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';

const root = fileURLToPath(new URL('.', import.meta.url));

/** The largest file precached: sqlite3.wasm is about 1 MB, Workbox's default limit 2 MiB. */
const PRECACHE_FILE_BYTES_MAX = 8 * 1024 * 1024;

export default defineConfig(({ command }) => ({
  root,
  // Only the build is a PWA: Vite's dev server serves no service worker. (Not import.meta.env.PROD,
  // which follows NODE_ENV: a build started from a test runner is not a "production" one.)
  define: { 'import.meta.env.OUTPOST_PWA': JSON.stringify(command === 'build') },
  // Relative URLs: the built playground works under any path it is served from.
  base: './',
  // The WASM build locates sqlite3.wasm relative to its own module; pre-bundling would move it.
  optimizeDeps: { exclude: ['outpost', '@sqlite.org/sqlite-wasm'] },
  // The database worker is a module worker that imports chunks.
  worker: { format: 'es' },
  build: { target: 'es2022', emptyOutDir: true },
  plugins: [
    VitePWA({
      strategies: 'injectManifest',
      srcDir: '.',
      filename: 'sw.ts',
      // demo/pwa.ts registers it, and asks it to replay its queue when a tab starts.
      injectRegister: false,
      registerType: 'autoUpdate',
      // The globs below already take the icons.
      includeManifestIcons: false,
      manifest: {
        name: 'Outpost SQL playground',
        short_name: 'Outpost',
        description: 'SQLite in your browser, stored in OPFS, offline-first, with sync.',
        start_url: './',
        scope: './',
        display: 'standalone',
        background_color: '#ffffff',
        theme_color: '#2456d6',
        icons: [
          { src: 'icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: 'icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: 'icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
          { src: 'icon.svg', sizes: 'any', type: 'image/svg+xml' },
        ],
      },
      injectManifest: {
        globPatterns: ['**/*.{html,js,css,wasm,svg,png,webmanifest}'],
        maximumFileSizeToCacheInBytes: PRECACHE_FILE_BYTES_MAX,
      },
    }),
  ],
}));
