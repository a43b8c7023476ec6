package jsonconn_test

import (
	"encoding/json"
	"fmt"
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
	`{"a":"#"}`, `{"a":"#xxxxxxxxxxxxx"}`, `["#xxxxxxxxxxxxxxx"]`, `{"#xxxxxxxxx":1}`, `["a\"#xxxxxxxxxxxxx"]`,
	`["a\\]xxxxxxxxxxxxxx"]`, `{"id":1001,"name":"user 1","email":"user1@example.com","tags":["alpha","beta"],"score":1.25}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	strings.Repeat("[", 100000),
}

// edgeCases returns inputs at the edges of the validator's fast paths: the
// words it reads strings by, the key and value it checks from two words, the
// ends of numbers and literals, and the 64 levels of nesting its stack keeps
// in a register.
func edgeCases() []string {
	var cases []string
	add := func(format string, args ...any) { cases = append(cases, fmt.Sprintf(format, args...)) }

	// A special byte at every position relative to the 8-byte words, in a
	// string at the top level, as a value and as a key.
	for _, special := range []string{`"`, `\"`, `\n`, "\x01", "\x1f", "\xff", `\u0041`, `\u00`, `\`, `\\`, `\/`, `\x`, `#`, `]`,
		`\"#`, `\"##`, `\\]`, `\\]]`, `\"\"`, `\\\\`, `\t\u0041\"`, "\\n\x01", "\x01n", "\x1f\\\""} {
		for pos := 0; pos < 26; pos++ {
			s := `"` + strings.Repeat("x", pos) + special + strings.Repeat("y", 20-pos%21) + `"`
			add("%s", s)
			add(`{"k":%s}`, s)
			add(`{%s:1}`, s)
			add(`[%s,%s]`, s, s)
		}
	}

	// Every byte just after an opening quote, just before a closing quote
	// and after each escape, in strings that end in the first word, the
	// second or later, as values and as keys.
	wrappers := []string{`%s`, `[%s]`, `{"k":%s}`, `{"abcdef":%s}`, `{%s:0}`, `{"a":%s,"b":1}`}
	for b := 0; b < 256; b++ {
		c := string(rune(b))
		if b >= 0x80 {
			c = string([]byte{byte(b)})
		}
		for _, s := range []string{
			`"` + c + `"`, `"` + c + `xxxxxxxxxxxxxxxxxx"`, `"xxxxx` + c + `"`, `"xxxxxxxxxxxx` + c + `"`,
			`"\"` + c + `xxx"`, `"\\` + c + `xxx"`, `"xx\n` + c + `"`, `"\u12` + c + `4"`, `"\` + c,
			`"xx` + c + `nxxxxxxxxxxxx"`, `"xx` + c + `"xxxxxxxx"`, `"xx` + c + `\"xxxxxxx"`,
		} {
			for _, w := range wrappers {
				add(w, s)
			}
		}
	}

	// Keys of every length 0..20 with values of every kind, string values of
	// every length 0..20, and what may follow them.
	values := []string{`1`, `-1.5e3`, `0`, `true`, `fals`, `null`, `[]`, `{}`, `["a"]`, `{"b":"c"}`, `"`, `"\u0041"`, `"a\"b"`, `"#"`, ` "a"`, `""`}
	for n := 0; n <= 20; n++ {
		for m := 0; m <= 20; m++ {
			values = append(values, `"`+strings.Repeat("v", m)+`"`)
		}
	}
	for n := 0; n <= 20; n++ {
		k := `"` + strings.Repeat("k", n) + `"`
		for _, v := range values {
			add(`{%s:%s}`, k, v)
			add(`{%s:%s,"next":"value"}`, k, v)
			add(`{%s:%s`, k, v)
			add(`{%s :%s}`, k, v)
			add(`{%s: %s }`, k, v)
			add(`{%s:%s"}`, k, v)
		}
		add(`{%s}`, k)
		add(`{%s,"a":1}`, k)
		add(`{%s:`, k)
		add(`{%s`, k)
		add(`{%s;1}`, k)
	}

	// Numbers and literals at the end of the buffer, truncated at every
	// length, and with each byte replaced.
	for _, full := range []string{`-0.5e+10`, `123456789012`, `0`, `-12.25E-7`, `1.25`, `true`, `false`, `null`} {
		for n := 0; n <= len(full); n++ {
			for _, w := range []string{`%s`, `[%s`, `[%s]`, `{"a":%s}`, `{"a":%s`, `%s `, `[%s,1]`} {
				add(w, full[:n])
			}
			if n < len(full) {
				add("%s", full[:n]+"x"+full[n+1:])
				add("[%s]", full[:n]+"0"+full[n+1:])
			}
		}
	}

	// Nesting around the 64 levels kept in a register, with objects and
	// arrays mixed, closed right, closed wrong at each end, or not closed.
	for _, depth := range []int{1, 2, 63, 64, 65, 66, 127, 128, 129, 130, 200} {
		var open, close strings.Builder
		for d := 0; d < depth; d++ {
			if d%3 == 1 {
				open.WriteString(`{"a":`)
			} else {
				open.WriteString(`[`)
			}
		}
		for d := depth - 1; d >= 0; d-- {
			if d%3 == 1 {
				close.WriteString(`}`)
			} else {
				close.WriteString(`]`)
			}
		}
		o, cl := open.String(), close.String()
		add(`%s1%s`, o, cl)
		add(`{"x":"y","z":[%s"s"%s]}`, o, cl)
		add(`%s1%s]`, o, cl)
		add(`%s1%s`, o, cl[:len(cl)-1])
		for _, at := range []int{0, len(cl) / 2, len(cl) - 1} {
			wrong := []byte(cl)
			if wrong[at] == ']' {
				wrong[at] = '}'
			} else {
				wrong[at] = ']'
			}
			add(`%s1%s`, o, wrong)
		}
	}
	return cases
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range append(validCases, edgeCases()...) {
		if got, want := jsonconn.Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.80q) = %t, json.Valid says %t", c, got, want)
		}
	}
}

// TestValidDoesNotAllocate checks that validation allocates nothing, with
// up to 64 levels of nesting (deeper documents borrow a pooled array).
func TestValidDoesNotAllocate(t *testing.T) {
	docs := [][]byte{
		[]byte(`{"id":1001,"name":"user 1","email":"user1@example.com","tags":["alpha","beta"],"score":1.25}`),
		[]byte(strings.Repeat(`[{"a":`, 32) + `"text with \"escapes\"\n"` + strings.Repeat("}]", 32)),
	}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, p := range docs {
			if !jsonconn.Valid(p) {
				t.Fatalf("Valid(%q) = false", p)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Valid allocated %.1f times per call, want 0", allocs)
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
