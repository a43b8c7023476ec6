// Package sniff names what the first bytes of a stream probably are when
// they are not a frame header: a PROXY protocol header, HTTP, TLS, SSH, Redis, or
// text such as newline-delimited JSON. The Reader uses it for the message of
// a header over the frame cap, and the jsonconn command for what a peer
// speaks; it is internal so that its wording can change.
package sniff

import (
	"bytes"
	"encoding/binary"
)

// Header returns what b probably is, as a phrase that completes "looks
// like ...", with a hint at the fix after a colon where there is one; or ""
// if b looks like nothing in particular, as the header of a frame that is
// merely too large does. b is what a peer sent where a frame header was
// expected: the 4 header bytes and whatever arrived with them.
//
// A header that declares more than limit bytes (the largest frame cap any
// peer may set) cannot come from a framed-JSON peer, and its 4 bytes are
// evidence enough. One within it could be a peer whose cap is larger than
// the reader's, so it is named only on evidence that no framed-JSON peer
// could send: a whole PROXY protocol v2 signature, or a TLS record whose
// next bytes are a handshake or an alert, neither of which JSON can hold.
// Text in a legal length is never named: a large frame's body is text too.
func Header(b []byte, limit uint32) string {
	if len(b) < 4 {
		return ""
	}
	legal := binary.BigEndian.Uint32(b) <= limit
	switch {
	case isProxyV2(b, legal):
		return "a PROXY protocol v2 header: wrap the listener with a PROXY protocol reader"
	case isTLSRecord(b):
		return "a TLS record: the peer speaks TLS (serve it through tls.NewListener, or dial with Dialer.TLSConfig)"
	case legal:
		return ""
	case bytes.HasPrefix(b, []byte("PROX")):
		return "a PROXY protocol v1 header: wrap the listener with a PROXY protocol reader"
	case bytes.HasPrefix(b, []byte("HTTP")), isHTTPMethod(b):
		return "HTTP: the peer speaks HTTP, not framed JSON"
	case bytes.HasPrefix(b, []byte("SSH-")):
		return "an SSH banner: the peer speaks SSH, not framed JSON"
	case isRedisError(b):
		return "a Redis error reply: the peer speaks Redis (RESP), not framed JSON"
	case (b[0] == '{' || b[0] == '[') && isText(b[:4]):
		return "JSON text without a length header (newline-delimited JSON?)"
	case isText(b[:4]):
		return "text, not a length header"
	}
	return ""
}

// proxyV2Signature starts every PROXY protocol v2 header.
var proxyV2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// isProxyV2 reports whether b starts with the PROXY protocol v2 signature:
// the whole of it if the length is legal, and as much as b holds otherwise.
func isProxyV2(b []byte, legal bool) bool {
	if len(b) < len(proxyV2Signature) {
		return !legal && bytes.HasPrefix(proxyV2Signature, b)
	}
	return bytes.HasPrefix(b, proxyV2Signature)
}

// isTLSRecord reports whether b starts a TLS handshake or alert record: its
// content type, a protocol version of 3.0 (SSL 3.0) to 3.4, a record length
// no TLS record exceeds, and a first byte of its body that JSON cannot
// start with (a handshake type of 1 or 2, an alert level of 1 or 2).
func isTLSRecord(b []byte) bool {
	const maxRecord = 16<<10 + 2048 // plaintext plus expansion, RFC 8446 5.2
	if len(b) < 6 || (b[0] != 0x16 && b[0] != 0x15) || b[1] != 3 || b[2] > 4 {
		return false
	}
	size := int(b[3])<<8 | int(b[4])
	return size <= maxRecord && (b[5] == 1 || b[5] == 2)
}

// httpMethods are the first four bytes of the HTTP/1 request methods, and
// of the HTTP/2 connection preface.
var httpMethods = []string{"GET ", "HEAD", "POST", "PUT ", "DELE", "CONN", "OPTI", "TRAC", "PATC", "PRI "}

func isHTTPMethod(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, []byte(m)) {
			return true
		}
	}
	return false
}

// isRedisError reports whether b starts a RESP error reply, which a Redis
// server sends for a request it cannot parse: "-ERR " or "-WRONGTYPE " and
// the like, a word in capitals after the minus sign.
func isRedisError(b []byte) bool {
	if len(b) < 5 || b[0] != '-' {
		return false
	}
	word, _, found := bytes.Cut(b[1:], []byte(" "))
	if !found || len(word) < 3 {
		return false
	}
	for _, c := range word {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// isText reports whether every byte of b is printable ASCII or white space.
func isText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
