package jsonconn_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jsonconn/jsonconn"
)

// validCases are JSON grammar edges; each is checked against json.Valid,
// which is the definition of valid here.
var validCases = []string{
	``, ` `, `1`, `-1`, `-`, `01`, `-01`, `0.5`, `.5`, `1.`, `1.e1`, `1e1`, `1E+1`, `1e-1`, `1e`,
	`1e+`, `-0`, `-0.0e-0`, `1234567890123456789012345678901234567890`, `1e400`, `0x10`, `+1`,
	`Infinity`, `NaN`, `true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `""`, `"a"`,
	`"\"\\\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u12"`, `"\x"`, `"\'"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\udc00"`, "\"\xff\xfe\"", "\"\xc3\"", "\"\x00\"", "\"\x1f\"",
	"\"\x7f\"", "\"tab\there\"", `"unterminated`, `"\`, `[]`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`,
	`{}`, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":1,"b":[true,{}]}`,
	`{"a" : 1 }`, "\t\n\r [ 1 ] \r\n\t", "\v1", "\f1", `[1]]`, `[[1]`, `{}{}`, `1 2`, `"a" "b"`,
	`[1] x`, "1\x00", `["a",{"b":[null,false,{"c":"d"}]}]`, `{"":""}`, `[""]`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	strings.Repeat("[", 100000),
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := validCases
	// A special byte at every position relative to the 8-byte fast path.
	for _, special := range []string{`"`, `\"`, `\n`, "\x01", "\xff", `\u0041`, `\`} {
		for pos := 0; pos < 20; pos++ {
			cases = append(cases, `"`+strings.Repeat("x", pos)+special+strings.Repeat("y", 20-pos)+`"`)
		}
	}
	for _, c := range cases {
		if got, want := jsonconn.Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.60q) = %t, json.Valid says %t", c, got, want)
		}
	}
}

// FuzzValid is the differential test: on every input, the package's
// validator must agree with json.Valid.
func FuzzValid(f *testing.F) {
	for _, c := range validCases[:len(validCases)-5] { // the deep ones live in testdata
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, want := jsonconn.Valid(p), json.Valid(p); got != want {
			t.Fatalf("Valid(%q) = %t, json.Valid says %t", p, got, want)
		}
	})
}
