// Package sniff names what the first bytes of a stream probably are when
// they are not a frame header: a PROXY protocol header, HTTP, TLS, SSH, or
// text such as newline-delimited JSON. The Reader uses it for the message of
// a header over the frame cap, and the jsonconn command for what a peer
// speaks; it is internal so that its wording can change.
package sniff

import "bytes"

// Header returns what b, the first bytes of a stream or the header of a
// frame (at least 4 bytes for a verdict), probably is, as a phrase that
// completes "looks like ...", with a hint at the fix after a colon where
// there is one; or "" if b looks like nothing in particular, as the header
// of a frame that is merely too large does.
func Header(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	switch {
	case bytes.HasPrefix(b, []byte("\r\n\r\n")):
		// The PROXY protocol v2 signature: \r\n\r\n\x00\r\nQUIT\n.
		return "a PROXY protocol v2 header: wrap the listener with a PROXY protocol reader"
	case bytes.HasPrefix(b, []byte("PROX")):
		return "a PROXY protocol v1 header: wrap the listener with a PROXY protocol reader"
	case isTLSRecord(b):
		return "a TLS record: the peer speaks TLS (serve it through tls.NewListener, or dial with Dialer.TLSConfig)"
	case bytes.HasPrefix(b, []byte("HTTP")), isHTTPMethod(b):
		return "HTTP: the peer speaks HTTP, not framed JSON"
	case bytes.HasPrefix(b, []byte("SSH-")):
		return "an SSH banner: the peer speaks SSH, not framed JSON"
	case (b[0] == '{' || b[0] == '[') && isText(b[:4]):
		return "JSON text without a length header (newline-delimited JSON?)"
	case isText(b[:4]):
		return "text, not a length header"
	}
	return ""
}

// isTLSRecord reports whether b starts a TLS record: a content type
// (change_cipher_spec, alert, handshake or application_data) and a
// protocol version of 3.0 (SSL 3.0) to 3.4.
func isTLSRecord(b []byte) bool {
	return b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 3 && b[2] <= 4
}

// httpMethods are the first four bytes of the HTTP/1 request methods.
var httpMethods = []string{"GET ", "HEAD", "POST", "PUT ", "DELE", "CONN", "OPTI", "TRAC", "PATC", "PRI "}

func isHTTPMethod(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, []byte(m)) {
			return true
		}
	}
	return false
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
