//go:build race

package jsonconn_test

// raceEnabled reports whether the tests run under the race detector, which
// makes sync.Pool drop a random share of what is put into it, so that
// pooled buffers are allocated anew now and then.
const raceEnabled = true
