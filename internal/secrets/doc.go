// Package secrets encrypts what cdcd keeps at rest (connection and pipeline
// configs, which may hold passwords and keys) with AES-256-GCM under a key the
// operator provides, and generates that key on first start when none is given.
//
// A Cipher is immutable and safe for concurrent use.
package secrets
