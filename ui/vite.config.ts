import { defineConfig } from 'vite';

// The build goes into ../web/static, which the Go binary embeds: committed,
// so that `go build` needs no Node. scripts/test rebuilds it and fails when
// the committed files differ.
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../web/static',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    // no inline assets: the server's CSP allows only files from itself
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});
