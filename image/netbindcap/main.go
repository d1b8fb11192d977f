//go:build linux

// Command netbindcap gives a file the file capability cap_net_bind_service=+ep,
// as `setcap cap_net_bind_service=+ep FILE` of libcap does, so that a process
// that is not root may bind ports below 1024 when it runs FILE.
//
// The Dockerfile runs it in a build stage FROM scratch: built static, it needs
// no base image, where CoreDNS's release Dockerfile runs setcap in a Debian
// stage that would have to be pulled from a registry.
package main

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// The extended attribute that holds a file's capabilities, and its value for
// cap_net_bind_service=+ep (linux/capability.h): struct vfs_cap_data, little
// endian, revision 2 with the effective flag set, then the permitted and
// inheritable masks of capabilities 0-31 and 32-63. CAP_NET_BIND_SERVICE is
// 10, so the permitted mask is 1<<10.
const xattr = "security.capability"

var netBindService = []byte{
	0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	0x00, 0x04, 0x00, 0x00, // permitted 0-31: 1 << CAP_NET_BIND_SERVICE
	0x00, 0x00, 0x00, 0x00, // inheritable 0-31
	0x00, 0x00, 0x00, 0x00, // permitted 32-63
	0x00, 0x00, 0x00, 0x00, // inheritable 32-63
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: netbindcap FILE")
		os.Exit(2)
	}
	if err := set(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "netbindcap:", err)
		os.Exit(1)
	}
}

// set writes the capability and reads it back.
func set(file string) error {
	if err := syscall.Setxattr(file, xattr, netBindService, 0); err != nil {
		return fmt.Errorf("set %s of %s: %w", xattr, file, err)
	}
	got := make([]byte, 64)
	n, err := syscall.Getxattr(file, xattr, got)
	if err != nil {
		return fmt.Errorf("read back %s of %s: %w", xattr, file, err)
	}
	if !bytes.Equal(got[:n], netBindService) {
		return fmt.Errorf("%s of %s reads back as % x, want % x", xattr, file, got[:n], netBindService)
	}
	return nil
}
