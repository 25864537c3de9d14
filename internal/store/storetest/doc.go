// Package storetest is the conformance suite every metadata store implementation
// passes: storetest.Run(t, open).
package storetest
