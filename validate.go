package jsonconn

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

// maxNestingDepth is encoding/json's limit on nested arrays and objects: a
// payload nested deeper is not valid, for json.Valid and so for us.
const maxNestingDepth = 10000

// valid reports whether p is exactly one JSON value, accepting precisely what
// json.Valid accepts (FuzzValid checks the two against each other): RFC 8259's
// grammar, nesting up to maxNestingDepth, and any byte from 0x20 up inside
// strings, invalid UTF-8 included.
//
// It is more than twice as fast as json.Valid (BenchmarkValidate) because it
// is a loop over the grammar rather than a state machine called once per
// byte, and because it skips the plain bytes of strings eight at a time.
// It does not recurse: open containers are a stack of bits, one word on the
// goroutine's stack and, past 64 levels, a pooled 1.3 KB array, so no input
// can make it use more.
func valid(p []byte) bool {
	var st bitStack
	ok := st.valid(p)
	if st.deep != nil {
		deepStacks.Put(st.deep)
	}
	return ok
}

// A bitStack records, for each open container, whether it is an object (1)
// or an array (0). The first 64 levels live in a word on the goroutine's
// stack; deeper documents borrow a pooled array.
type bitStack struct {
	shallow uint64
	deep    *[(maxNestingDepth + 63) / 64]uint64 // levels 64 and up
}

func (st *bitStack) set(depth int, object bool) {
	word, bit := &st.shallow, uint64(1)<<(depth%64)
	if depth >= 64 {
		if st.deep == nil {
			st.deep = deepStacks.Get().(*[(maxNestingDepth + 63) / 64]uint64)
		}
		word = &st.deep[depth/64-1]
	}
	if object {
		*word |= bit
	} else {
		*word &^= bit
	}
}

func (st *bitStack) object(depth int) bool {
	word := st.shallow
	if depth >= 64 {
		word = st.deep[depth/64-1]
	}
	return word&(uint64(1)<<(depth%64)) != 0
}

// deepStacks holds the arrays of bitStacks. Bits are set or cleared on
// every push, so an array is never cleared.
var deepStacks = sync.Pool{New: func() any { return new([(maxNestingDepth + 63) / 64]uint64) }}

func (st *bitStack) valid(p []byte) bool {
	depth := 0
	inObject := false // the innermost open container is an object
	i := skipSpace(p, 0)
value:
	for {
		// A value starts at p[i].
		if i >= len(p) {
			return false
		}
		switch c := p[i]; c {
		case '{', '[':
			if depth == maxNestingDepth {
				return false
			}
			inObject = c == '{'
			st.set(depth, inObject)
			depth++
			if i = skipSpace(p, i+1); i >= len(p) {
				return false
			}
			if inObject {
				if p[i] == '}' {
					i++
					depth--
					inObject = depth > 0 && st.object(depth-1)
					break
				}
				if i = member(p, i); i < 0 {
					return false
				}
				continue value
			}
			if p[i] == ']' {
				i++
				depth--
				inObject = depth > 0 && st.object(depth-1)
				break
			}
			continue value
		case '"':
			if i = stringEnd(p, i+1); i < 0 {
				return false
			}
		case 't':
			if i = literal(p, i, "true"); i < 0 {
				return false
			}
		case 'f':
			if i = literal(p, i, "false"); i < 0 {
				return false
			}
		case 'n':
			if i = literal(p, i, "null"); i < 0 {
				return false
			}
		default:
			if i = numberEnd(p, i); i < 0 {
				return false
			}
		}
		// A value ended at p[i]: close containers until a comma asks for
		// the next value.
		for {
			i = skipSpace(p, i)
			if depth == 0 {
				return i == len(p)
			}
			if i >= len(p) {
				return false
			}
			switch c := p[i]; {
			case c == ',':
				if i = skipSpace(p, i+1); inObject {
					if i = member(p, i); i < 0 {
						return false
					}
				}
				continue value
			case c == '}' && inObject, c == ']' && !inObject:
				i++
				depth--
				inObject = depth > 0 && st.object(depth-1)
			default:
				return false
			}
		}
	}
}

// member checks `"key" :` at p[i:] and returns the index of the value after
// it, or -1.
func member(p []byte, i int) int {
	if i >= len(p) || p[i] != '"' {
		return -1
	}
	if i = stringEnd(p, i+1); i < 0 {
		return -1
	}
	if i = skipSpace(p, i); i >= len(p) || p[i] != ':' {
		return -1
	}
	return skipSpace(p, i+1)
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// literal checks that p[i:] starts with word and returns the index after it,
// or -1.
func literal(p []byte, i int, word string) int {
	if len(p)-i < len(word) || string(p[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// Masks for testing the eight bytes of a word at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stringEnd scans the rest of a string whose opening quote is at p[i-1] and
// returns the index after its closing quote, or -1.
func stringEnd(p []byte, i int) int {
	for {
		// Skip eight plain bytes at a time: none is a quote, a backslash
		// or a control character.
		for len(p)-i >= 8 {
			w := binary.LittleEndian.Uint64(p[i:])
			special := (w - 0x20*ones) &^ w & highs // a byte < 0x20
			q := w ^ ('"' * ones)
			special |= (q - ones) &^ q & highs // a byte == '"'
			b := w ^ ('\\' * ones)
			special |= (b - ones) &^ b & highs // a byte == '\\'
			if special != 0 {
				// The lowest flagged byte is exact; those above it may
				// be false alarms from a borrow, which the byte loop
				// below settles. Most often it is the closing quote.
				if i += bits.TrailingZeros64(special) / 8; p[i] == '"' {
					return i + 1
				}
				break
			}
			i += 8
		}
		if i >= len(p) {
			return -1
		}
		switch c := p[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(p) {
				return -1
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(p)-i < 6 || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// numberEnd checks the number at p[i:] and returns the index after it, or
// -1: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(p []byte, i int) int {
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i >= len(p):
		return -1
	case p[i] == '0':
		i++
	case '1' <= p[i] && p[i] <= '9':
		for i++; i < len(p) && isDigit(p[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(p) && p[i] == '.' {
		if i++; i >= len(p) || !isDigit(p[i]) {
			return -1
		}
		for i++; i < len(p) && isDigit(p[i]); i++ {
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		if i++; i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if i >= len(p) || !isDigit(p[i]) {
			return -1
		}
		for i++; i < len(p) && isDigit(p[i]); i++ {
		}
	}
	return i
}
