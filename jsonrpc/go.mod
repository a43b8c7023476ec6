// Module jsonrpc carries JSON-RPC 2.0 over jsonconn, with the Go libraries
// users already have: adapters for github.com/creachadair/jrpc2 and
// github.com/sourcegraph/jsonrpc2. It is a module of its own so that the
// library itself depends on neither. jrpc2 v1.3.1 is the last release whose
// go line is 1.23.
module github.com/jsonconn/jsonconn/jsonrpc

go 1.23.0

require (
	github.com/creachadair/jrpc2 v1.3.1
	github.com/jsonconn/jsonconn v0.0.0
	github.com/sourcegraph/jsonrpc2 v0.2.3
)

require (
	github.com/creachadair/mds v0.23.0 // indirect
	golang.org/x/sync v0.16.0 // indirect
)

replace github.com/jsonconn/jsonconn => ..
