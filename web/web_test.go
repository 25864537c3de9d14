package web

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// The UI runs under a CSP with no inline script or style: every page loads
// its script and style from files, and no element carries an event handler
// or style attribute.
func TestNoInlineScriptOrStyle(t *testing.T) {
	t.Parallel()
	pages, err := fs.Glob(FS(), "*.html")
	require.NoError(t, err)
	require.NotEmpty(t, pages)
	for _, p := range pages {
		b, err := fs.ReadFile(FS(), p)
		require.NoError(t, err)
		z := html.NewTokenizer(strings.NewReader(string(b)))
		inScript := false
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				break
			}
			tok := z.Token()
			switch tt {
			case html.StartTagToken, html.SelfClosingTagToken:
				require.NotEqual(t, "style", tok.Data, "%s: a <style> element", p)
				src := false
				for _, a := range tok.Attr {
					require.False(t, strings.HasPrefix(strings.ToLower(a.Key), "on"), "%s: <%s %s=…>", p, tok.Data, a.Key)
					require.NotEqual(t, "style", strings.ToLower(a.Key), "%s: <%s style=…>", p, tok.Data)
					require.False(t, strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:"), "%s: a javascript: URL", p)
					src = src || a.Key == "src"
				}
				if tok.Data == "script" {
					require.True(t, src, "%s: an inline <script>", p)
					inScript = true
				}
			case html.TextToken:
				require.False(t, inScript && strings.TrimSpace(tok.Data) != "", "%s: script text inline", p)
			case html.EndTagToken:
				if tok.Data == "script" {
					inScript = false
				}
			}
		}
	}
}
