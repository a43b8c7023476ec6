package jsonconntest

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestPeerHasReadAll checks the one answer splitWrites relies on: over a
// Unix socket, all is true when nothing is written, false while any of it
// is unread, even after a partial read, and true again once it is all read.
// Over TCP the answer is refused.
func TestPeerHasReadAll(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	expect := func(when string, want bool) {
		t.Helper()
		all, ok := peerHasReadAll(w)
		if !ok || all != want {
			t.Fatalf("%s: peerHasReadAll = %v, %v; want %v, true", when, all, ok, want)
		}
	}
	expect("before any write", true)
	if _, err := w.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	expect("after a write", false)
	buf := make([]byte, 10)
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		t.Fatal(err)
	}
	expect("after reading 4 of 10 bytes", false)
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		t.Fatal(err)
	}
	expect("after reading all 10", true)

	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tln.Close()
	tc, err := net.Dial("tcp", tln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, ok := peerHasReadAll(tc); ok {
		t.Error("peerHasReadAll answered for a TCP connection; it cannot know")
	}
}
