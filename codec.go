package jsonconn

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sync"
)

// The two pooled JSON paths: marshal for Send and unmarshalStd for Receive,
// each reusing encoding/json's state across messages where json.Marshal and
// json.Unmarshal would allocate it anew. Both are used only without a
// Config codec.

// encodeState is a pooled buffer with a JSON encoder writing into it.
type encodeState struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// maxPooledEncode bounds the encode buffers kept for reuse, so that one huge
// message does not pin its buffer in the pool.
const maxPooledEncode = 1 << 20

var encodePool = sync.Pool{New: func() any {
	e := new(encodeState)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// marshal encodes v as compact JSON without HTML escaping. The returned
// payload aliases e, which the caller frees once done with it.
func marshal(v any) (e *encodeState, p []byte, err error) {
	e = encodePool.Get().(*encodeState)
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		e.free()
		return nil, nil, err
	}
	p = e.buf.Bytes()
	return e, p[:len(p)-1], nil // Encode ends each value with a newline
}

// free returns e to its pool. It accepts nil, for a payload that came from
// Config.Marshal.
func (e *encodeState) free() {
	if e != nil && e.buf.Cap() <= maxPooledEncode {
		encodePool.Put(e)
	}
}

// maxPooledDecode is the largest payload unmarshalStd decodes with a pooled
// json.Decoder. A Decoder keeps a buffer as large as the largest payload it
// has read, which the pool would hold on to; and for larger payloads the
// allocations a Decoder saves are a small part of the cost.
const maxPooledDecode = 16 << 10

// A stdDecoder is a json.Decoder reading from a payload. Between uses it is
// clean: it has consumed every byte it was given, so the offsets in its
// errors count from the start of the next payload, as json.Unmarshal's do.
type stdDecoder struct {
	src bytes.Reader
	dec *json.Decoder
}

var stdDecoders = sync.Pool{New: func() any {
	d := new(stdDecoder)
	d.dec = json.NewDecoder(&d.src)
	return d
}}

// unmarshalStd is json.Unmarshal(p, v) for a Receive without a Config
// codec. A small payload is decoded with a pooled json.Decoder, which like
// json.Unmarshal scans it once for syntax and then decodes it, but reuses
// its decoding state: on a small message that saves four allocations and
// about a tenth of the decoding time (BenchmarkObjects). Where the Decoder
// and json.Unmarshal could differ, on a payload that is not exactly one
// valid value, the result is json.Unmarshal's.
func unmarshalStd(p []byte, v any) error {
	// Trailing whitespace (json.Encoder ends each value with a newline) is
	// cut, so that the Decoder consumes the whole of what it is given and
	// can go back to the pool. Leading whitespace is left to json.Unmarshal:
	// a Decoder's error offsets would count from the value, not the payload,
	// under GOEXPERIMENT=jsonv2.
	q := bytes.TrimRight(p, " \t\r\n")
	if len(q) == 0 || len(q) > maxPooledDecode || isSpace(q[0]) {
		return json.Unmarshal(p, v)
	}
	d := stdDecoders.Get().(*stdDecoder)
	d.src.Reset(q)
	start := d.dec.InputOffset()
	err := d.dec.Decode(v)
	end := d.dec.InputOffset() - start // where the value ended in q
	d.src.Reset(nil)
	if err == nil && end == int64(len(q)) {
		stdDecoders.Put(d) // clean: it consumed all it was given
		return nil
	}
	// The Decoder is dropped: after a syntax error it is dead, and after
	// a value followed by more bytes it holds them.
	if err != nil && valid(p) {
		// A type mismatch or an UnmarshalJSON error: the same as
		// json.Unmarshal's, offsets included.
		return err
	}
	// Not valid JSON: json.Unmarshal says so, and where. Only when a valid
	// value is followed by more bytes has v been written to, as
	// json.Unmarshal, which checks the whole payload first, would not.
	return json.Unmarshal(p, v)
}

// checkUnmarshalTarget refuses a destination json.Unmarshal would refuse only
// after parsing, so that a caller's mistake does not consume a message.
func checkUnmarshalTarget(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	return nil
}
