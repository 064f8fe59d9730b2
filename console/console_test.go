package console

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHandler(t *testing.T) {
	for _, c := range []struct {
		method, path string
		status       int
		typ          string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/index.html", 200, "text/html; charset=utf-8"},
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"HEAD", "/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/missing.js", 404, ""},
		{"GET", "/console.go", 404, ""},         // not an asset type
		{"GET", "/../console_test.go", 404, ""}, // cleaned to a name outside the assets
		{"GET", "/assets/app.js", 404, ""},
		{"POST", "/", 405, ""},
	} {
		rec := get(t, c.method, c.path)
		if rec.Code != c.status {
			t.Errorf("%s %s: got %d, want %d", c.method, c.path, rec.Code, c.status)
			continue
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("%s %s: CSP %q", c.method, c.path, got)
		}
		if c.typ != "" && rec.Header().Get("Content-Type") != c.typ {
			t.Errorf("%s %s: Content-Type %q, want %q", c.method, c.path, rec.Header().Get("Content-Type"), c.typ)
		}
		if c.method == "HEAD" && rec.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d body bytes", c.path, rec.Body.Len())
		}
	}
	if got := get(t, "GET", "/").Header().Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q, want DENY", got)
	}
}

// TestCSPNothingInline checks the policy forbids what an injected string
// would need (inline script and style, other origins, framing) and that the
// pages need none of it: no inline script or style, no handler attributes,
// no URL of another origin, no innerHTML or eval in the script.
func TestCSPNothingInline(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Error("CSP allows something unsafe")
	}
	bad := []*regexp.Regexp{
		regexp.MustCompile(`<script>`), regexp.MustCompile(`<style`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`https?://`), regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`),
		regexp.MustCompile(`localStorage|document\.cookie`),
	}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		// The SVG namespace is a name, not a resource.
		b = bytes.ReplaceAll(b, []byte(`"http://www.w3.org/2000/svg"`), nil)
		for _, re := range bad {
			if loc := re.FindIndex(b); loc != nil {
				t.Errorf("%s: %q at byte %d", p, b[loc[0]:loc[1]], loc[0])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIndexReferences checks that every file the page loads is served.
func TestIndexReferences(t *testing.T) {
	page := get(t, "GET", "/").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("index references %d files, want the script and the style sheet", len(refs))
	}
	for _, m := range refs {
		if rec := get(t, "GET", "/"+m[1]); rec.Code != http.StatusOK {
			t.Errorf("index references %s: got %d", m[1], rec.Code)
		}
	}
}

// FuzzHandler: any path is either one of the embedded files, served whole
// with the policy, or a 404; nothing outside the assets is read.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/", "/app.js", "/../console.go", "/%2e%2e/console.go", "//style.css", "/index.html/", "/a/../app.js", "/\x00.js"} {
		f.Add(s)
	}
	h := Handler()
	f.Fuzz(func(t *testing.T, p string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Fatalf("%q: no CSP", p)
		}
		switch rec.Code {
		case http.StatusNotFound:
		case http.StatusOK:
			b := rec.Body.Bytes()
			found := false
			_ = fs.WalkDir(assets, "assets", func(name string, d fs.DirEntry, _ error) error {
				if d != nil && !d.IsDir() {
					want, _ := fs.ReadFile(assets, name)
					found = found || bytes.Equal(want, b)
				}
				return nil
			})
			if !found {
				t.Fatalf("%q: served %d bytes that are no embedded file", p, len(b))
			}
		default:
			t.Fatalf("%q: status %d", p, rec.Code)
		}
	})
}
