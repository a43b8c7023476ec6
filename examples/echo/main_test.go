package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{
		`sent 0 "hello", got back 0 "hello"`,
		`sent 1 "framed JSON <&>", got back 1 "framed JSON <&>"`,
		`sent 2 "héllo 🙂", got back 2 "héllo 🙂"`,
		`refused: jsonconn: invalid JSON at offset 20`,
		`got back 4 "still connected"`,
		`server done`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
