package jsonconn_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if a goroutine started by the package or its tests
// outlives the tests: a Conn must start none, and every test goroutine must
// end once its conns are closed.
func TestMain(m *testing.M) {
	if spec := os.Getenv(peersEnv); spec != "" {
		runHostilePeers(spec) // a child process of hostile_test.go
		return
	}
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(10 * time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests:\n\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to wait for the goroutines that run code of this
// module or of nettest to end, and returns the stacks of those that remain.
func leakedGoroutines(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaks []string
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 {
				continue // this goroutine
			}
			if strings.Contains(g, "github.com/jsonconn/jsonconn") || strings.Contains(g, "golang.org/x/net/nettest") {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
