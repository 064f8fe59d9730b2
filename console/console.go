// Package console is the aggregator's web console for operators and
// compliance reviewers: static pages (HTML, CSS and JavaScript embedded in
// the binary, no external resources) that sign in with an API token and read
// the same JSON routes as every other client. The pages only show what the
// token's role may read; the API checks the role on every call, so the
// console is no security boundary of its own.
//
// The token is kept in the tab's sessionStorage and sent as a bearer token
// by the page's own fetch calls: no cookie carries it, so a cross-site
// request carries nothing (no CSRF), and the strict Content-Security-Policy
// the handler sets allows scripts, styles and connections from the
// aggregator's origin only.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is the policy of every console response: nothing
// inline, nothing from another origin, no framing, no form posts.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console's files from the root of its path ("/" is
// index.html); mount it under a prefix with http.StripPrefix. GET and HEAD
// only; anything else is 405, an unknown file 404.
func Handler() http.Handler { return &handler{files: assets} }

type handler struct{ files fs.FS }

var mediaTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cache-Control", "no-cache")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	typ, ok := mediaTypes[path.Ext(name)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(h.files, "assets/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	hd.Set("Content-Type", typ)
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b) // the status is on the wire; a client that left is not reported
	}
}
