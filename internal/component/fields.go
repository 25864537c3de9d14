package component

import (
	"reflect"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/redact"
)

// Field describes one key of a component's config, read off its Spec: what
// forms and generated docs show for it.
type Field struct {
	Key string `json:"key"`
	// Kind is string, integer, number, boolean, list (of strings unless
	// Items says otherwise), map (string to string) or object.
	Kind  string `json:"kind"`
	Items string `json:"items,omitempty"`
	// Default is the value the component takes when the key is not set.
	Default any `json:"default,omitempty"`
	// Secret keys are write-only: shown redacted, kept unless sent again.
	Secret bool `json:"secret,omitempty"`
	// Fields are an object's keys.
	Fields []Field `json:"fields,omitempty"`
}

// Fields lists the config keys of spec (a Spec's value: a struct with yaml
// tags), in declaration order, with their defaults.
func Fields(spec any) []Field {
	v := reflect.ValueOf(spec)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	return structFields(v)
}

func structFields(v reflect.Value) []Field {
	var out []Field
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") && fv.Kind() == reflect.Struct {
			out = append(out, structFields(fv)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f := Field{Key: name, Secret: redact.Key(name)}
		describe(&f, fv)
		out = append(out, f)
	}
	return out
}

func describe(f *Field, v reflect.Value) {
	t := v.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		if v.IsNil() {
			v = reflect.Zero(t)
		} else {
			v = v.Elem()
		}
	}
	switch t.Kind() {
	case reflect.String:
		f.Kind = "string"
	case reflect.Bool:
		f.Kind = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.Kind = "integer"
	case reflect.Float32, reflect.Float64:
		f.Kind = "number"
	case reflect.Slice, reflect.Array:
		f.Kind = "list"
		var item Field
		describe(&item, reflect.Zero(t.Elem()))
		if item.Kind != "string" {
			f.Items = item.Kind
			f.Fields = item.Fields
		}
	case reflect.Map:
		f.Kind = "map"
	case reflect.Struct:
		f.Kind = "object"
		f.Fields = structFields(v)
		return
	default:
		f.Kind = "object"
		return
	}
	if v.IsValid() && !v.IsZero() && !f.Secret {
		f.Default = v.Interface()
	}
}
