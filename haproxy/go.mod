// Module haproxy runs jsonconn Servers behind a real HAProxy: the PROXY
// protocol (with github.com/pires/go-proxyproto, v0.8.0, the last release
// whose go line allows 1.23), rolling restarts and frozen backends. It is a
// module of its own so that the library depends on none of this; .ci/run
// installs haproxy and runs its tests.
module github.com/jsonconn/jsonconn/haproxy

go 1.23.0

require (
	github.com/jsonconn/jsonconn v0.0.0
	github.com/pires/go-proxyproto v0.8.0
)

replace github.com/jsonconn/jsonconn => ..
