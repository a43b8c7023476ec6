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
// It is five to ten times as fast as json.Valid (BenchmarkValidate):
//
//   - It is one goto state machine over the grammar, not a state machine
//     called once per byte, and it calls no function on its common paths, so
//     its state stays in registers. (Deeper than 64 levels, it returns for a
//     pooled array and resumes.)
//   - It reads strings a word (8 bytes) at a time: eight arithmetic
//     operations flag the quotes, backslashes and control bytes of a word
//     (see specials), and the lowest flag ends the plain run. An escape such
//     as \n that ends in the same word is skipped without reloading it, and
//     long runs are tested two words per round.
//   - Most strings end in the word that starts at their opening quote, so
//     they take one load and one word test, and one 16-bit compare checks a
//     key's closing quote and colon together. If the value is a string too,
//     its end is looked for in the key's word and the next one, whose
//     address does not depend on the key's length: on short strings the
//     time goes mostly to waiting, word after word, for the load whose
//     address the previous word's test gives, and this saves one such wait
//     per member.
//
// It does not recurse: open containers are a stack of bits, one word in a
// register and, past 64 levels, a pooled 1.3 KB array, so no input can make
// it use more.
func valid(p []byte) bool {
	var s scanner
	r := s.scan(p)
	if r == scanDeeper {
		s.deep = deepStacks.Get().(*deepStack)
		r = s.scan(p)
		deepStacks.Put(s.deep)
	}
	return r == scanValid
}

// A deepStack holds the container bits of levels 64 and up, bit l%64 of
// word l/64 for level 64+l.
type deepStack [(maxNestingDepth + 63) / 64]uint64

// deepStacks holds the deep stacks of scanners. Bits are set or cleared on
// every push, so an array is never cleared.
var deepStacks = sync.Pool{New: func() any { return new(deepStack) }}

// The results of scanner.scan.
const (
	scanInvalid = iota // p is not valid JSON
	scanValid          // p is valid JSON
	scanDeeper         // the scan needs a deep stack to go on
)

// A scanner is the state that scan keeps across a return for a deep stack.
// Bit k of stack tells whether the container opened at level depth-1-k is an
// object (1) or an array (0); the bits of levels below depth-64 are in deep.
type scanner struct {
	i, depth int
	stack    uint64
	deep     *deepStack
}

// Masks for testing the eight bytes of a word at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// specials flags, by setting its high bit, each byte of w that is a control
// character (< 0x20), a quote or a backslash: the bytes that end a plain run
// in a string. No such byte is ever left out, and the lowest flag is exact,
// but a borrow between bytes can also flag a run of '#' right after a quote
// or control character, or of ']' right after a backslash.
func specials(w uint64) uint64 {
	// XOR with 0x02 maps '"' to 0x20 and keeps control characters below it,
	// so a byte less than 0x21 is one of them.
	return ((w ^ 0x02*ones - 0x21*ones) | (w ^ '\\'*ones - ones)) & ^w & highs
}

// word returns p[i:i+8] as a little-endian word: byte 0 is p[i].
func word(p []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(p[i : i+8])
}

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// shortEscape tells which bytes may follow a backslash as a two-byte escape.
var shortEscape = [256]bool{'"': true, '\\': true, '/': true, 'b': true, 'f': true, 'n': true, 'r': true, 't': true}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scan validates p from the saved state, which is the start of p for a new
// scanner. It returns scanDeeper, with the state saved at the opening bracket,
// when the document nests deeper than 64 levels and s has no deep stack.
//
// The labels are the states of the grammar; i is the index of the next byte.
func (s *scanner) scan(p []byte) int {
	p = p[:len(p):len(p)] // with cap known to be len, slicing p needs one register less
	i, depth, stack := s.i, s.depth, s.stack
	isKey := false // the string being scanned is a key, not a value
	var c byte

value: // A value starts at p[i], after optional whitespace.
	if len(p)-i >= 8 {
		w := word(p, i)
		if c = byte(w); c == '"' {
			// Setting byte 0 keeps the opening quote from being flagged
			// or flagging byte 1 by a borrow, so the lowest flag, if
			// any, is the string's end, an escape or a control byte.
			special := specials(w | 0xff)
			if special == 0 {
				i += 8
				isKey = false
				goto stringWords
			}
			k := bits.TrailingZeros64(special)
			if byte(w>>(k&56)) == '"' {
				i += k>>3 + 1
				goto end
			}
			i += k >> 3
			isKey = false
			goto stringSpecial
		}
	} else {
		if i >= len(p) {
			return scanInvalid
		}
		if c = p[i]; c == '"' {
			i++
			isKey = false
			goto stringWords
		}
	}
	if c-'1' < 9 {
		i++
		goto integer
	}
	switch c {
	case '{', '[':
		if depth >= 64 {
			if depth == maxNestingDepth {
				return scanInvalid
			}
			if s.deep == nil {
				s.i, s.depth, s.stack = i, depth, stack
				return scanDeeper
			}
			l := depth - 64
			w := &s.deep[l/64]
			*w = *w&^(1<<(l%64)) | stack>>63<<(l%64)
		}
		stack <<= 1
		depth++
		for i++; i < len(p) && isSpace(p[i]); i++ {
		}
		if c == '{' {
			stack |= 1
			if i < len(p) && p[i] == '}' {
				i++
				goto pop
			}
			goto key
		}
		if i < len(p) && p[i] == ']' {
			i++
			goto pop
		}
		goto value
	case '0':
		i++
		goto fraction
	case '-':
		if i++; i >= len(p) {
			return scanInvalid
		}
		if c = p[i]; c == '0' {
			i++
			goto fraction
		}
		if c-'1' >= 9 {
			return scanInvalid
		}
		i++
		goto integer
	case 't':
		if len(p)-i < 4 || string(p[i:i+4]) != "true" {
			return scanInvalid
		}
		i += 4
		goto end
	case 'f':
		if len(p)-i < 5 || string(p[i:i+5]) != "false" {
			return scanInvalid
		}
		i += 5
		goto end
	case 'n':
		if len(p)-i < 4 || string(p[i:i+4]) != "null" {
			return scanInvalid
		}
		i += 4
		goto end
	case ' ', '\t', '\n', '\r':
		i++
		goto value
	}
	return scanInvalid

integer: // The rest of a number's integer part after its first digit, 1-9.
	for i < len(p) && p[i]-'0' < 10 {
		i++
	}
fraction: // A number's integer part ended before p[i].
	if i >= len(p) {
		goto end
	}
	if p[i] == '.' {
		if i++; i >= len(p) || p[i]-'0' >= 10 {
			return scanInvalid
		}
		for i++; i < len(p) && p[i]-'0' < 10; i++ {
		}
		if i >= len(p) {
			goto end
		}
	}
	if p[i]|0x20 == 'e' {
		if i++; i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if i >= len(p) || p[i]-'0' >= 10 {
			return scanInvalid
		}
		for i++; i < len(p) && p[i]-'0' < 10; i++ {
		}
	}
	goto end

pop: // A container closed before p[i].
	depth--
	stack >>= 1
	if depth >= 64 {
		l := depth - 64
		stack |= s.deep[l/64] >> (l % 64) & 1 << 63
	}

end: // A value ended before p[i].
	if i >= len(p) {
		if depth == 0 {
			return scanValid
		}
		return scanInvalid
	}
	if c = p[i]; c == ',' {
		if depth == 0 {
			return scanInvalid
		}
		i++
		if stack&1 == 0 {
			goto value
		}
		goto key
	}
	if c == '}' {
		if depth == 0 || stack&1 == 0 {
			return scanInvalid
		}
		i++
		goto pop
	}
	if c == ']' {
		if depth == 0 || stack&1 != 0 {
			return scanInvalid
		}
		i++
		goto pop
	}
	if isSpace(c) {
		i++
		goto end
	}
	return scanInvalid

key: // A member's key starts at p[i], after optional whitespace.
	if len(p)-i >= 8 {
		w := word(p, i)
		if byte(w) == '"' {
			special := specials(w | 0xff)
			if special == 0 {
				i += 8
				isKey = true
				goto stringWords
			}
			k := bits.TrailingZeros64(special)
			if uint16(w>>(k&56)) != '"'|':'<<8 {
				i += k >> 3
				isKey = true
				goto stringSpecial
			}
			// The key and its colon end at byte k>>3+1 of w. If the value
			// is a string, look for its end in w and the next word.
			if len(p)-i >= 16 {
				if rest := special & (special - 1); rest != 0 {
					// The value's opening quote must be the next flag,
					// at byte k>>3+2, and its closing quote the one after.
					if k2 := bits.TrailingZeros64(rest); k2 == k+16 && byte(w>>(k2&56)) == '"' {
						if rest &= rest - 1; rest != 0 {
							if k3 := bits.TrailingZeros64(rest); byte(w>>(k3&56)) == '"' {
								i += k3>>3 + 1
								goto end
							}
						} else {
							w2 := word(p, i+8)
							special2 := specials(w2)
							if special2 == 0 {
								i += 16
								isKey = false
								goto stringWords
							}
							if k3 := bits.TrailingZeros64(special2); byte(w2>>(k3&56)) == '"' {
								i += k3>>3 + 9
								goto end
							}
						}
					}
				} else if k == 55 {
					// The value starts at byte 0 of the next word.
					if w2 := word(p, i+8); byte(w2) == '"' {
						special2 := specials(w2 | 0xff)
						if special2 == 0 {
							i += 16
							isKey = false
							goto stringWords
						}
						if k3 := bits.TrailingZeros64(special2); byte(w2>>(k3&56)) == '"' {
							i += k3>>3 + 9
							goto end
						}
					}
				}
			}
			i += k>>3 + 2
			goto value
		}
	}
	if i >= len(p) {
		return scanInvalid
	}
	if c = p[i]; c != '"' {
		if isSpace(c) {
			i++
			goto key
		}
		return scanInvalid
	}
	i++
	isKey = true
	goto stringWords

colon: // A key ended before p[i].
	if i < len(p) && p[i] == ':' {
		i++
		goto value
	}
	for i < len(p) && isSpace(p[i]) {
		i++
	}
	if i >= len(p) || p[i] != ':' {
		return scanInvalid
	}
	i++
	goto value

stringWords: // A string's plain bytes run from p[i] on.
	for len(p)-i >= 8 {
		w := word(p, i)
		special := specials(w)
		if special == 0 && len(p)-i >= 16 {
			// Test the next word before going round: the two loads do
			// not wait for each other.
			w = word(p, i+8)
			if special = specials(w); special == 0 {
				i += 16
				continue
			}
			i += 8
		}
		// Go through the flags of w in order, skipping escapes that end
		// in w, until the closing quote; leave anything else to
		// stringSpecial.
		for special != 0 {
			k := bits.TrailingZeros64(special)
			t := w >> (k & 56) // the flagged byte and those above it
			if c = byte(t); c == '"' {
				i += k>>3 + 1
				if isKey {
					goto colon
				}
				goto end
			}
			// (A backslash in byte 7 has t>>8 == 0, no short escape.)
			if c != '\\' || !shortEscape[byte(t>>8)] {
				i += k >> 3
				goto stringSpecial
			}
			special &^= 2<<((k+8)&63) - 1 // drop flags up to the escaped byte
		}
		i += 8
	}
	for i < len(p) && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\' {
		i++
	}
stringSpecial: // A string's plain run ended at p[i].
	if i >= len(p) {
		return scanInvalid
	}
	switch c = p[i]; c {
	case '"':
		i++
		if isKey {
			goto colon
		}
		goto end
	case '\\':
		if i+1 >= len(p) {
			return scanInvalid
		}
		switch p[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if len(p)-i < 6 || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
				return scanInvalid
			}
			i += 6
		default:
			return scanInvalid
		}
		goto stringWords
	}
	if c < 0x20 {
		return scanInvalid
	}
	// A false alarm of specials after an escape in stringWords, skipped
	// like any plain byte.
	i++
	goto stringWords
}
