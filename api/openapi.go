package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var openapiYAML []byte

var openapiJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
})

// OpenAPI returns the OpenAPI document as JSON.
func OpenAPI() ([]byte, error) { return openapiJSON() }

// openapi serves the document as it holds now: in open mode (no token
// exists) it declares no security requirement.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	has, err := s.cfg.Tokens.HasTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b := s.docs.withAuth
	if !has {
		b = s.docs.open
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
