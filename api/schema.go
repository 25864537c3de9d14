package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
)

// documents is the OpenAPI document as served, and the request body schemas
// the server holds bodies to, so that what the document says is what the
// server enforces.
type documents struct {
	// withAuth and open are the served document with tokens required, and as
	// in open mode (no token exists), where no security requirement holds.
	withAuth, open []byte
	// bodies maps a route ("PUT /api/v1/pipelines/{name}") to the schema of
	// its JSON (and YAML) body.
	bodies map[string]*openapi3.Schema
}

func loadDocuments() (*documents, error) {
	b, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	d := &documents{withAuth: b, bodies: map[string]*openapi3.Schema{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
				d.bodies[method+" "+path] = mt.Schema.Value
			}
		}
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	raw["security"] = []any{}
	if d.open, err = json.Marshal(raw); err != nil {
		return nil, err
	}
	return d, nil
}

// problems returns every way body breaks the schema of route's body, each at
// its path (prefix, then the JSON path). A body that is not JSON or YAML is
// not checked here: the decoder says so.
func (d *documents) problems(route string, body []byte, prefix string) config.Problems {
	sch := d.bodies[route]
	if sch == nil {
		return nil
	}
	var y any
	if yaml.Unmarshal(body, &y) != nil {
		return nil
	}
	b, err := json.Marshal(y)
	if err != nil {
		return config.Problems{{Path: strings.TrimSuffix(prefix, "."), Message: "mapping keys must be strings"}}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil
	}
	err = sch.VisitJSON(v, openapi3.MultiErrors())
	var ps config.Problems
	collect(err, prefix, &ps)
	return ps
}

// collect flattens the errors of a schema check into problems.
func collect(err error, prefix string, ps *config.Problems) {
	if err == nil {
		return
	}
	var many openapi3.MultiError
	if errors.As(err, &many) {
		for _, e := range many {
			collect(e, prefix, ps)
		}
		return
	}
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		*ps = append(*ps, config.Problem{Path: strings.TrimSuffix(prefix, "."), Message: err.Error()})
		return
	}
	if se.Origin != nil {
		var inner openapi3.MultiError
		if errors.As(se.Origin, &inner) {
			collect(inner, prefix, ps)
			return
		}
	}
	path := strings.Join(se.JSONPointer(), ".")
	if prefix != "" && path != "" {
		path = prefix + "." + path
	} else if path == "" {
		path = prefix
	}
	if path == "" {
		path = "(document)"
	}
	for _, p := range *ps {
		if p.Path == path && p.Message == se.Reason {
			return
		}
	}
	*ps = append(*ps, config.Problem{Path: path, Message: se.Reason})
}

// merge returns the problems of both lists, those of extra only where first
// has none at the same path (first's words are the more precise).
func merge(first, extra config.Problems) config.Problems {
	out := append(config.Problems(nil), first...)
	for _, e := range extra {
		dup := false
		for _, f := range first {
			if f.Path == e.Path {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}
