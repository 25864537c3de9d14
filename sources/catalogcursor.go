package sources

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// CatalogCursor encodes a page's last table as an opaque Next.
func CatalogCursor(namespace, name string) string {
	b, _ := json.Marshal([2]string{namespace, name})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCatalogCursor decodes an After ("" is the first page).
func ParseCatalogCursor(after string) (namespace, name string, err error) {
	if after == "" {
		return "", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(after)
	var v [2]string
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return "", "", errors.New("after: not a cursor this catalog returned")
	}
	return v[0], v[1], nil
}

// LikePattern is s as a LIKE/ILIKE pattern matching it anywhere, with the
// pattern characters escaped (escape character \).
func LikePattern(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s) + "%"
}
