package jsonrpc

import "testing"

// TestParseReplies: only JSON-RPC 2.0 responses, alone or in a batch, are
// taken for replies; anything else is left as it is, so that a caller's
// message over the cap is refused, never rewritten.
func TestParseReplies(t *testing.T) {
	for _, tt := range []struct {
		rec   string
		n     int // replies found, 0 for none
		batch bool
	}{
		{`{"jsonrpc":"2.0","id":7,"result":1}`, 1, false},
		{`{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"m"}}`, 1, false},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}`, 1, false},
		{`[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","id":2,"result":2}]`, 2, true},
		{` [ {"jsonrpc":"2.0","id":1,"result":1} ] `, 1, true},

		{`{"id":7,"payload":1}`, 0, false},                                                 // not JSON-RPC
		{`[{"id":7},{"id":8}]`, 0, false},                                                  // an array of what is not
		{`{"ID":7,"jsonrpc":"2.0","result":1}`, 0, false},                                  // names are exact
		{`{"jsonrpc":"2.0","id":7,"result":1,"error":{"code":1,"message":"m"}}`, 0, false}, // both
		{`{"jsonrpc":"2.0","id":7}`, 0, false},                                             // neither
		{`{"jsonrpc":"2.0","id":7,"method":"m","result":1}`, 0, false},                     // a request
		{`{"jsonrpc":"2.0","method":"m"}`, 0, false},                                       // a notification
		{`{"jsonrpc":"2.0","result":1}`, 0, false},                                         // no id
		{`{"jsonrpc":"1.0","id":7,"result":1}`, 0, false},                                  // another version
		{`{"jsonrpc":2.0,"id":7,"result":1}`, 0, false},                                    // not the string
		{`[]`, 0, false},
		{`[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","method":"m"}]`, 0, false}, // mixed
		{`"x"`, 0, false},
		{`[1,2]`, 0, false},
	} {
		replies, batch := parseReplies([]byte(tt.rec))
		if len(replies) != tt.n || (tt.n > 0 && batch != tt.batch) {
			t.Errorf("parseReplies(%s) = %d replies, batch %v; want %d, batch %v", tt.rec, len(replies), batch, tt.n, tt.batch)
		}
	}
}
