// Package config is the declarative form of connections and pipelines, as written
// in a YAML or JSON file (`cdcd run -f`, `cdcd pipelines apply -f`) or sent to the
// API: strict decoding (unknown keys are errors), defaults applied in one place
// (WithDefaults), Validate that returns every problem with its path, ${ENV} and
// ${file:/path} references resolved only when a pipeline is built, and Redact for
// everything that is shown (logs, API responses).
//
// Values are plain data and safe to share between goroutines once decoded.
package config
