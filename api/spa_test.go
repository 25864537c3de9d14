package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// The UI's routes are the single-page app's: any path without a file
// extension gets index.html (not cached); the build's hashed assets are
// cached for good; a missing asset is a 404, not the page.
func TestSPA(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{
		"index.html":       {Data: []byte("<!doctype html><title>cdcd</title>")},
		"assets/app-1.js":  {Data: []byte("console.log(1)")},
		"assets/app-1.css": {Data: []byte("body{}")},
	}
	h := spa(files)
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	for _, p := range []string{"/", "/pipelines/shop", "/connections/new", "/tokens"} {
		w := get(p)
		require.Equal(t, 200, w.Code, p)
		require.Contains(t, w.Body.String(), "<title>cdcd</title>", p)
		require.Equal(t, "no-cache", w.Header().Get("Cache-Control"), p)
	}
	w := get("/assets/app-1.js")
	require.Equal(t, 200, w.Code)
	require.Equal(t, "console.log(1)", w.Body.String())
	require.Contains(t, w.Header().Get("Cache-Control"), "immutable")
	require.Equal(t, 404, get("/assets/app-2.js").Code)
	require.Equal(t, 404, get("/favicon.ico").Code)
}
