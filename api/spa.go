package api

import (
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// spa serves the web UI from files: a file that exists is served as it is
// (the build's hashed assets cached for good), and any other path without a
// file extension is a route of the single-page app, answered with index.html
// (never cached, so a new build is picked up at once). A missing asset is a
// 404, not the page.
func spa(files fs.FS) http.Handler {
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		st, err := fs.Stat(files, name)
		switch {
		case err == nil && !st.IsDir():
			if strings.HasPrefix(name, "assets/") {
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				w.Header().Set("Cache-Control", "no-cache")
			}
			fileServer.ServeHTTP(w, r)
		case path.Ext(name) == "":
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, files, "index.html")
		default:
			http.NotFound(w, r)
		}
	})
}
