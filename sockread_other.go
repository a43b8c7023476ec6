//go:build !unix

package jsonconn

import "io"

// sockSource reads sockets directly on Unix systems only (sockread_unix.go);
// elsewhere every source reads into the Reader's pad.
type sockSource struct{}

func newSockSource(io.Reader) *sockSource { return nil }

func (*sockSource) read(int) (*[]byte, int, error) { panic("unreachable") }
