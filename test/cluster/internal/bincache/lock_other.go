//go:build !unix

package bincache

// lock does nothing where there is no flock: concurrent builds of a binary
// each rename a complete file into place, the last one wins.
func lock(string, func(func() error) error) (unlock func(), err error) { return func() {}, nil }
