package jsonconn_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jsonconn/jsonconn"
)

// decodeTarget is a destination with typed fields, nesting, and a field
// whose UnmarshalJSON fails with a *json.SyntaxError on a valid payload.
type decodeTarget struct {
	A int               `json:"a"`
	S string            `json:"s"`
	L []int             `json:"l"`
	N *decodeTarget     `json:"n"`
	M map[string]string `json:"m"`
	C picky             `json:"c"`
}

// picky refuses the string "bad" with the syntax error of a broken
// payload, as a careless UnmarshalJSON might.
type picky string

func (p *picky) UnmarshalJSON(b []byte) error {
	if string(b) == `"bad"` {
		return json.Unmarshal([]byte("{"), new(any))
	}
	*p = picky(b)
	return nil
}

// decodeCases are payloads valid and not: trailing bytes, whitespace, type
// mismatches, numbers that need the end of input to end, and one too big
// for the pooled decoder.
var decodeCases = []string{
	`{"a":1,"s":"x","l":[1,2],"n":{"a":2,"n":null},"m":{"k":"v"},"c":"ok"}`,
	`  {"a":1}  `, "{\"a\":1}\n", "{\"l\":[1,\"x\"]}\n", `  {"l":[1,"x"]}`, "\n\n{\"a\":1e400}", "{\"a\":1e400}\r\n", "\t{\"a\":1}", `123`, `-1.5e3`, `"str"`, `null`, `[]`, `{}`, `true`,
	`{"a":"notint"}`, `{"a":1.5}`, `{"l":[1,"x",3]}`, `{"c":"bad"}`, `{"a":99999999999999999999}`,
	`{"s":1,"a":"x","l":{}}`, `{"m":{"k":1}}`, `{"n":{"n":{"a":"deep"}}}`,
	`{"a":1}x`, `{"a":1} {"a":2}`, `{"a":1}]`, `{"a":1}}`, `1 2`, `12 `, `{"a":`, ``, ` `, `{"a":1,}`,
	`tru`, "\"\x01\"", `[1,2`, `{"a" 1}`, `nul`, `"unterminated`,
	`{"l":[` + strings.Repeat("1,", 10000) + `1]}`, // over 16 KiB
	`{"l":[` + strings.Repeat("1,", 10000) + `"x"]}`,
}

// checkUnmarshalStd decodes p with UnmarshalStd and json.Unmarshal into
// fresh values of each destination type and compares the outcomes.
func checkUnmarshalStd(t *testing.T, p []byte) {
	t.Helper()
	for _, typ := range []reflect.Type{reflect.TypeOf(decodeTarget{}), reflect.TypeOf((*any)(nil)).Elem(), reflect.TypeOf(map[string]any{}), reflect.TypeOf([]int{})} {
		got, want := reflect.New(typ), reflect.New(typ)
		gotErr, wantErr := jsonconn.UnmarshalStd(p, got.Interface()), json.Unmarshal(p, want.Interface())
		// %#v shows every field: offsets, types, field names.
		if fmt.Sprintf("%#v", gotErr) != fmt.Sprintf("%#v", wantErr) {
			t.Fatalf("decoding %.80q into %v: error %#v, json.Unmarshal says %#v", p, typ, gotErr, wantErr)
		}
		if valueThenMore(p) {
			continue // documented: v may have been written to
		}
		if diff := cmp.Diff(want.Interface(), got.Interface()); diff != "" {
			t.Fatalf("decoding %.80q into %v: result differs from json.Unmarshal's (-want +got):\n%s", p, typ, diff)
		}
	}
}

// valueThenMore reports whether p is a valid JSON value followed by more
// bytes that are not whitespace: the one case where Receive may write to v
// and json.Unmarshal does not.
func valueThenMore(p []byte) bool {
	var v json.RawMessage // any valid value, with no type to mismatch
	return !json.Valid(p) && json.NewDecoder(bytes.NewReader(p)).Decode(&v) == nil
}

// TestUnmarshalStdAgreesWithUnmarshal runs the cases in random orders, so
// that pooled decoders are reused after every kind of payload.
func TestUnmarshalStdAgreesWithUnmarshal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 5; round++ {
		for _, i := range rng.Perm(len(decodeCases)) {
			checkUnmarshalStd(t, []byte(decodeCases[i]))
		}
	}
}

// FuzzUnmarshalStd is the differential test of Receive's decoder against
// json.Unmarshal, on every input.
func FuzzUnmarshalStd(f *testing.F) {
	for _, c := range decodeCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkUnmarshalStd(t, p)
	})
}

// TestUnmarshalStdSavesAllocations checks that the pooled Decoder is
// reused, with and without the newline json.Encoder ends values with: it
// must allocate less than json.Unmarshal, whose decoding state is new on
// every call.
func TestUnmarshalStdSavesAllocations(t *testing.T) {
	for _, p := range []string{`{"a":1,"s":"x","l":[1,2]}`, "{\"a\":1,\"s\":\"x\",\"l\":[1,2]}\n"} {
		var v decodeTarget
		std := testing.AllocsPerRun(200, func() { jsonconn.UnmarshalStd([]byte(p), &v) })
		plain := testing.AllocsPerRun(200, func() { json.Unmarshal([]byte(p), &v) })
		if std >= plain {
			t.Errorf("%q: UnmarshalStd allocates %.0f times, json.Unmarshal %.0f; the pooled Decoder is not reused", p, std, plain)
		}
	}
}
