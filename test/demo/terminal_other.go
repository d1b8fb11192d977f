//go:build !unix

package main

// foreground does nothing where there are no process groups.
func foreground() (release func()) { return func() {} }
