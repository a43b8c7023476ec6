module github.com/jsonconn/jsonconn

// The module targets Go 1.23 so that users on older toolchains can adopt it.
// The newest golang.org/x releases require Go 1.26, so x/ dependencies are
// pinned to the last releases that still allow 1.23: golang.org/x/net v0.42.0
// (nettest, used by tests only) and golang.org/x/sync v0.16.0 (errgroup, used
// by cmd/jsonconn only; the library package imports the standard library
// alone). Raise them only together with the go line.
go 1.23.0

require (
	github.com/google/go-cmp v0.7.0
	golang.org/x/net v0.42.0
	golang.org/x/sync v0.16.0
)
