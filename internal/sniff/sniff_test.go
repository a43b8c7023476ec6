package sniff_test

import (
	"strings"
	"testing"

	"github.com/jsonconn/jsonconn/internal/sniff"
)

// limit is jsonconn.MaxFrameSizeLimit, which the package cannot import.
const limit = 1 << 30

func TestHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    string
		want string // a word the verdict must contain; "" for none
	}{
		{"PROXY v2, as HAProxy's send-proxy-v2 sends it", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c", "PROXY protocol v2"},
		{"PROXY v1", "PROXY TCP4 192.0.2.1 192.0.2.2 5000 7000\r\n", "PROXY protocol v1"},
		{"TLS 1.2 ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "TLS"},
		{"TLS alert", "\x15\x03\x03\x00\x02\x02\x28", "TLS"},
		{"HTTP request", "GET / HTTP/1.1\r\n", "HTTP"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n", "HTTP"},
		{"HTTP response", "HTTP/1.0 400 Bad Request\r\n", "HTTP"},
		{"SSH", "SSH-2.0-OpenSSH_9.2\r\n", "SSH"},
		{"newline-delimited JSON", `{"a":1}` + "\n", "newline-delimited"},
		{"other text", "hello", "text"},
		{"a large frame", "\x00\x10\x00\x01", ""},
		{"the largest length", "\xff\xff\xff\xff", ""},
		{"too short to tell", "GET", ""},
		// Lengths a framed-JSON peer with a larger cap may send: named
		// only on evidence JSON cannot hold.
		{"a legal length like a TLS record, then JSON", "\x16\x03\x01\x01[\"", ""},
		{"a legal length like a TLS record, too short to tell", "\x16\x03\x01\x02", ""},
		{"a legal length like the PROXY v2 signature, then JSON", "\r\n\r\n\"abc\"", ""},
		{"a legal length of printable bytes, then JSON", "*012[1,2]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sniff.Header([]byte(tt.b), limit)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("Header(%q) = %q, want a verdict containing %q", tt.b, got, tt.want)
			}
		})
	}
}

// TestHeaderRedis: a Redis error reply is named where its length could not
// be legal, as under a 256 KiB cap, and not where it could.
func TestHeaderRedis(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		b     string
		limit uint32
		want  string
	}{
		{"-ERR unknown command 'x'\r\n", 1 << 18, "Redis"},
		{"-WRONGTYPE Operation\r\n", 1 << 18, "Redis"},
		{"-ERR unknown command 'x'\r\n", 1 << 30, ""}, // 0x2d455252 is under 1 GiB
		{"-1e5", 1 << 18, "text"},
	} {
		got := sniff.Header([]byte(tt.b), tt.limit)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("Header(%q, %d) = %q, want a verdict containing %q", tt.b, tt.limit, got, tt.want)
		}
	}
}
