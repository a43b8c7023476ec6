package jsonconntest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// checkCases are the cases, in the order they run: framing (1), limits
// (2), connections (3). Each names the section of docs/protocol.md whose
// rule it checks, and the key of that rule (see rules.go): a case that finds
// the rule broken gets the verdict of the rule's word.
var checkCases = []checkCase{
	{"1.1", "§10", "the sender test vectors round-trip", checkVectors, ruleWhole},
	sizeCase("1.2", 1),
	sizeCase("1.3", 512),
	sizeCase("1.4", 513),
	sizeCase("1.5", 16384),
	sizeCase("1.6", 16385),
	sizeCase("1.7", 65536),
	sizeCase("1.8", -1), // the peer's cap minus one
	sizeCase("1.9", 0),  // exactly the peer's cap
	{"1.10", "§1", "a header split byte by byte across writes", checkSplitHeader, ruleWhole},
	{"1.11", "§1", "a body split across writes", checkSplitBody, ruleWhole},
	{"1.12", "§1", "1,000 frames in one write come back whole and in order", checkPipelined, ruleWhole},
	{"1.13", "§9", "U+2028, escapes and emoji come back equal", checkUnicode, ruleWhole},
	{"1.14", "§3", "numbers beyond 2^53", checkBigNumbers, ""},
	{"1.15", "§9", "the bytes of each payload are preserved", checkBytesPreserved, ""},

	{"2.1", "§2", "a header one byte over the cap closes the connection", overCapCase(false), ruleCheckHeader},
	{"2.2", "§2", "a header of 0xFFFFFFFF closes the connection", overCapCase(true), ruleCheckHeader},
	{"2.3", "§5", "frames before an offending one are delivered", checkDeliveredBefore, ruleDeliverBefore},
	invalidCase("2.4", "a zero-length frame", ""),
	invalidCase("2.5", "a payload that is not JSON", `{"a":`),
	invalidCase("2.6", "two values in one frame", `1 2`),
	invalidCase("2.7", "trailing bytes after the value", `{"a":1}}`),
	{"2.8", "§3", "invalid UTF-8 inside a string", checkInvalidUTF8, ""},
	{"2.9", "§3", "nesting 10,000 deep", checkDeepNesting, ""},

	{"3.1", "§4", "a half-close: the peer answers what it got, then closes", checkHalfClose, ruleHalfClose},
	{"3.2", "§8", "a reset in the middle of a frame does not hurt the next connection", checkResetMidFrame, ruleIndependent},
	{"3.3", "§8", "concurrent connections", checkConcurrent, ""},
	{"3.4", "§6", "a reader that stalls: what the peer sends before it stops", checkStalledReader, ruleFlowControl},
	{"3.5", "§2", "a frame dripped a byte at a time", checkDrip, ""},
	{"3.6", "§9", "round-trip latency", checkLatency, ""},
	{"3.7", "§9", "throughput", checkThroughput, ""},
}

// A checkCase checks one rule of the protocol against the peer.
type checkCase struct {
	id, section, title string
	run                func(ctx context.Context, k *checker) finding
	rule               string // the key of the rule it checks; "" for a case that only measures
}

// A finding is what a case's run found.
type finding struct {
	verdict Verdict // Pass, Info, or broken
	detail  string
	rule    string // for broken: the key of the rule broken, if not the case's
}

// broken is the verdict of a finding that a rule was broken: the runner
// turns it into the verdict of the rule's word (Fail for MUST, NonStrict for
// SHOULD), so that the verdicts and protocol.md §9 cannot disagree.
const broken Verdict = "broken"

func passed(detail string) finding   { return finding{verdict: Pass, detail: detail} }
func measured(detail string) finding { return finding{verdict: Info, detail: detail} }

// broke is the finding that the case's own rule was broken.
func broke(detail string) finding { return finding{verdict: broken, detail: detail} }

// unreached is the finding of a case that could not connect to the peer: a
// Fail that breaks no rule of the protocol, so it quotes none.
func unreached(err error) finding { return finding{verdict: Fail, detail: err.Error()} }

// A problem is what went wrong in an exchange, and the rule it broke; the
// zero problem is none.
type problem struct {
	detail, rule string
	skip         bool // the exchange was not tried: a payload is over the peer's cap
	unreached    bool // it could not connect
}

func (p problem) ok() bool { return p.detail == "" }

// broke is the finding of p, with prefix before its detail.
func (p problem) broke(prefix string) finding {
	switch {
	case p.skip:
		return measured(prefix + p.detail)
	case p.unreached:
		return finding{verdict: Fail, detail: prefix + p.detail}
	}
	return finding{verdict: broken, detail: prefix + p.detail, rule: p.rule}
}

// problemf is a problem with the case's own rule.
func problemf(format string, args ...any) problem {
	return problem{detail: fmt.Sprintf(format, args...)}
}

// senderVectors are the rows of docs/protocol.md's test vectors that end in
// a clean end of stream and are not empty, as their streams: writing the
// payloads produces exactly these bytes, so the peer must echo payloads
// equal to them. TestCheckVectorsAreTheProtocols keeps the two the same.
var senderVectors = []struct{ name, stream string }{
	{"object", "000000077b2261223a317d"},
	{"two frames", "0000000131000000032278" + "22"},
	{"html is not escaped", "0000000b7b2268223a223c263e227d"},
	{"utf-8 string", "0000000822c3a9f09f998222"},
	{"invalid utf-8 in a string", "0000000322ff22"},
	{"whitespace is allowed", "0000000b7b20227822203a2031207d"},
	{"exactly the cap", "0000000474727565"},
}

// splitFrames splits a stream of whole frames into their payloads. The
// streams are the protocol's test vectors, so a frame that runs past the end
// of the stream is a bug in them, and panics.
func splitFrames(stream []byte) [][]byte {
	var ps [][]byte
	for len(stream) >= 4 {
		n := binary.BigEndian.Uint32(stream)
		if uint64(n) > uint64(len(stream)-4) {
			panic(fmt.Sprintf("test vector %x: frame of %d bytes runs past the end", stream, n))
		}
		ps = append(ps, stream[4:4+n])
		stream = stream[4+n:]
	}
	return ps
}

// echoes sends payloads in one write on a new connection and checks that
// the peer answers each with an equal value, in order. It returns the zero
// problem if so, or what went wrong, and the answers it got.
func echoes(ctx context.Context, k *checker, payloads [][]byte) (problem, [][]byte) {
	for _, m := range payloads {
		if len(m) > k.cap {
			return problem{detail: fmt.Sprintf("not run: a payload of %d bytes is over the peer's cap of %d", len(m), k.cap), skip: true}, nil
		}
	}
	p, err := k.open(ctx)
	if err != nil {
		return problem{detail: err.Error(), unreached: true}, nil
	}
	defer p.Close()
	if err := p.send(payloads...); err != nil {
		return problemf("sending: %v", err), nil
	}
	var got [][]byte
	for i, want := range payloads {
		m, err := p.recv()
		if err != nil {
			return problemf("echo %d of %d: %s", i+1, len(payloads), readProblem(err)), got
		}
		got = append(got, m)
		if !jsonEqual(m, want) {
			return echoProblem(fmt.Sprintf("echo %d of %d", i+1, len(payloads)), want, m), got
		}
	}
	return problem{}, got
}

// echoProblem says what is wrong with m, the echo of want, which is not an
// equal JSON value, naming the rule it breaks where the bytes show it: a
// length that counts characters or UTF-16 code units instead of bytes (§1),
// or an echo that is not JSON (§3). Otherwise the echo differs, which breaks
// the case's own rule.
func echoProblem(which string, want, m []byte) problem {
	n := len(m) // the echo's header announced n bytes
	units, runes := utf16Len(want), utf8.RuneCount(want)
	counted := ""
	switch {
	case n == len(want) || !bytes.HasPrefix(want, m):
	case n == units && n == runes:
		counted = "characters (or UTF-16 code units, as JavaScript's string.length counts: they are the same here)"
	case n == units:
		counted = "UTF-16 code units (JavaScript's string.length)"
	case n == runes:
		counted = "characters"
	}
	switch {
	case counted != "":
		return problem{detail: fmt.Sprintf("%s: its header says %d, the payload's length in %s, not its %d bytes: got %s", which, n, counted, len(want), clip(m)), rule: ruleByteLength}
	case !json.Valid(m):
		return problem{detail: fmt.Sprintf("%s is not JSON: sent %s, got %s", which, clip(want), clip(m)), rule: ruleJSON}
	}
	return problem{detail: fmt.Sprintf("%s differs: sent %s, got %s", which, clip(want), clip(m)), rule: ruleWhole}
}

// utf16Len returns the length of the string in b in UTF-16 code units, as
// JavaScript counts it, invalid UTF-8 counting one unit a byte.
func utf16Len(b []byte) int {
	n := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// readProblem describes a read error in a case's terms.
func readProblem(err error) string {
	switch closeKind(err) {
	case "closed":
		return "the peer closed the connection"
	case "reset":
		return fmt.Sprintf("the peer reset the connection (%v)", err)
	}
	if isTimeoutErr(err) || closeKind(err) == "" {
		return "no answer within the case's timeout"
	}
	return err.Error()
}

// clip shortens a payload for a report line.
func clip(p []byte) string {
	if len(p) > 60 {
		return fmt.Sprintf("%q… (%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("%q", p)
}

func checkVectors(ctx context.Context, k *checker) finding {
	var sent int
	for _, v := range senderVectors {
		stream, _ := hex.DecodeString(v.stream)
		payloads := splitFrames(stream)
		if p, _ := echoes(ctx, k, payloads); !p.ok() {
			return p.broke(fmt.Sprintf("vector %q: ", v.name))
		}
		sent += len(payloads)
	}
	return passed(fmt.Sprintf("%d vectors, %d payloads, each echoed equal", len(senderVectors), sent))
}

// sizePayload returns a JSON payload of exactly n bytes.
func sizePayload(n int) []byte {
	if n == 1 {
		return []byte("1")
	}
	b := bytes.Repeat([]byte("s"), n)
	b[0], b[n-1] = '"', '"'
	return b
}

// sizeCase round-trips a payload of n bytes; 0 means the peer's cap, -1
// the cap minus one.
func sizeCase(id string, n int) checkCase {
	title := fmt.Sprintf("a payload of %d bytes round-trips", n)
	if n == 1 {
		title = "a payload of 1 byte round-trips"
	}
	switch n {
	case 0:
		title = "a payload of exactly the cap round-trips"
	case -1:
		title = "a payload of the cap minus one round-trips"
	}
	return checkCase{id, "§2", title, func(ctx context.Context, k *checker) finding {
		size := n
		switch n {
		case 0:
			size = k.cap
		case -1:
			size = k.cap - 1
		}
		if size > k.cap || size < 1 {
			return measured(fmt.Sprintf("not run: %d bytes is outside the peer's cap of %d", size, k.cap))
		}
		if p, _ := echoes(ctx, k, [][]byte{sizePayload(size)}); !p.ok() {
			return p.broke(fmt.Sprintf("%d bytes: ", size))
		}
		return passed("echoed equal")
	}, ruleAcceptUpToCap}
}

// splitWrites sends the frame of payload in pieces, cut at cuts, and checks
// the echo. The peer must see each piece arrive on its own, or the case
// tests nothing. Over a Unix socket on Linux it does: each piece is written
// only once the peer has read the one before (see peerHasReadAll). The
// wait for a peer that reads nothing until more arrives is bounded: all the
// waits together take at most half the case's timeout, and each at most a
// second, after which the next piece goes anyway.
// Elsewhere the pieces go splitPause apart, which a busy peer can sleep
// through: it then reads two pieces at once, and the case may pass a peer
// that would fail it on a quiet machine. The detail says which it was.
func splitWrites(ctx context.Context, k *checker, payload []byte, cuts []int) finding {
	p, err := k.open(ctx)
	if err != nil {
		return unreached(err)
	}
	defer p.Close()
	if tc, ok := p.Conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	frame := appendFrame(nil, payload)
	pieces := append(cuts[:len(cuts):len(cuts)], len(frame))
	bound := min(time.Second, k.timeout/time.Duration(2*len(pieces)))
	prev, separate := 0, 0
	for _, cut := range pieces {
		if _, err := p.Write(frame[prev:cut]); err != nil {
			return broke(fmt.Sprintf("writing bytes %d to %d: %v", prev, cut, err))
		}
		prev = cut
		if awaitRead(ctx, p.Conn, bound) {
			separate++
		}
	}
	m, err := p.recv()
	switch {
	case err != nil:
		return broke(readProblem(err))
	case !jsonEqual(m, payload):
		return broke(fmt.Sprintf("sent %s, got %s", clip(payload), clip(m)))
	}
	if separate == len(pieces) {
		return passed(fmt.Sprintf("%d writes, each read by the peer before the next; echoed equal", len(pieces)))
	}
	if _, ok := peerHasReadAll(p.Conn); ok {
		return passed(fmt.Sprintf("%d writes, %d of them read by the peer before the next; echoed equal", len(pieces), separate))
	}
	return passed(fmt.Sprintf("%d writes, %v apart; echoed equal", len(pieces), splitPause))
}

// splitPause is the pause between the pieces of a split frame where the
// system cannot tell when the peer has read them.
const splitPause = 20 * time.Millisecond

// awaitRead waits until the peer has read everything written to c, for at
// most bound, and reports whether it has. Where that cannot be known, it
// pauses splitPause and reports false.
func awaitRead(ctx context.Context, c net.Conn, bound time.Duration) bool {
	if _, ok := peerHasReadAll(c); !ok {
		sleepCtx(ctx, splitPause)
		return false
	}
	deadline := time.Now().Add(bound)
	for {
		if all, ok := peerHasReadAll(c); ok && all {
			return true
		}
		if !time.Now().Before(deadline) || !sleepCtx(ctx, time.Millisecond) {
			return false
		}
	}
}

func checkSplitHeader(ctx context.Context, k *checker) finding {
	return splitWrites(ctx, k, []byte(`{"split":"header"}`), []int{1, 2, 3, 4})
}

func checkSplitBody(ctx context.Context, k *checker) finding {
	// 3,014 bytes, or the peer's cap if it is smaller.
	n := min(3014, k.cap)
	if n < 32 {
		return measured(fmt.Sprintf("not run: the peer's cap of %d bytes is too small to split a body", k.cap))
	}
	payload := []byte(`{"split":"` + strings.Repeat("b", n-12) + `"}`)
	return splitWrites(ctx, k, payload, []int{4, 10, 4 + n/3, 4 + 2*n/3, n})
}

func checkPipelined(ctx context.Context, k *checker) finding {
	payloads := make([][]byte, 1000)
	for i := range payloads {
		// Up to 67 bytes, padded less under a smaller cap.
		base := len(fmt.Sprintf(`{"n":%d,"pad":""}`, i))
		payloads[i] = []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", max(0, min(i%50, k.cap-base)))))
	}
	if p, _ := echoes(ctx, k, payloads); !p.ok() {
		return p.broke("")
	}
	return passed("1,000 frames echoed whole and in order")
}

// unicodePayloads are the payloads of the Unicode case: characters and
// escapes that JSON encoders treat differently.
var unicodePayloads = [][]byte{
	[]byte("\"line\u2028separator\u2029paragraph\""),
	[]byte(`"\u2028\u2029 escaped"`),
	[]byte(`"quote \" backslash \\ slash \/ controls \b\f\n\r\t \u0001"`),
	[]byte(`"emoji 🙂 and escaped \ud83d\ude42"`),
	[]byte(`{"é":"ü","日本":"語","<>&":"<>&"}`),
	[]byte(`"lone surrogate \ud800"`),
}

func checkUnicode(ctx context.Context, k *checker) finding {
	if p, _ := echoes(ctx, k, unicodePayloads); !p.ok() {
		return p.broke("")
	}
	return passed(fmt.Sprintf("%d payloads echoed equal", len(unicodePayloads)))
}

func checkBigNumbers(ctx context.Context, k *checker) finding {
	payloads := [][]byte{[]byte(`9007199254740993`), []byte(`[-9007199254740993,12345678901234567890,1e400]`)}
	p, err := k.open(ctx)
	if err != nil {
		return measured(err.Error())
	}
	defer p.Close()
	if err := p.send(payloads...); err != nil {
		return measured(fmt.Sprintf("sending: %v", err))
	}
	var notes []string
	for _, want := range payloads {
		m, err := p.recv()
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %s", want, readProblem(err)))
			break
		}
		if jsonEqual(m, want) {
			notes = append(notes, fmt.Sprintf("%s came back exact", want))
		} else {
			notes = append(notes, fmt.Sprintf("%s came back as %s", want, clip(m)))
		}
	}
	return measured(strings.Join(notes, "; "))
}

func checkBytesPreserved(ctx context.Context, k *checker) finding {
	payloads := slices.Clone(unicodePayloads)
	for _, v := range senderVectors {
		stream, _ := hex.DecodeString(v.stream)
		payloads = append(payloads, splitFrames(stream)...)
	}
	p, got := echoes(ctx, k, payloads)
	same := 0
	var changed []string
	for i, m := range got {
		if bytes.Equal(m, payloads[i]) {
			same++
		} else if len(changed) < 3 {
			changed = append(changed, fmt.Sprintf("%s became %s", clip(payloads[i]), clip(m)))
		}
	}
	detail := fmt.Sprintf("%d of %d payloads came back byte for byte", same, len(payloads))
	if len(changed) > 0 {
		detail += "; for example, " + strings.Join(changed, "; ")
	}
	if !p.ok() {
		detail += "; " + p.detail
	}
	return measured(detail)
}

// overCapCase sends a header over the peer's cap and nothing more, and
// checks that the peer closes without waiting for the body.
func overCapCase(largest bool) func(ctx context.Context, k *checker) finding {
	return func(ctx context.Context, k *checker) finding {
		n := uint64(k.cap) + 1
		if largest {
			n = 0xFFFFFFFF
		}
		if n > 0xFFFFFFFF {
			return measured("not run: the cap is the largest header")
		}
		p, err := k.open(ctx)
		if err != nil {
			return unreached(err)
		}
		defer p.Close()
		if _, err := p.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}); err != nil {
			return broke(fmt.Sprintf("writing the header: %v", err))
		}
		start := time.Now()
		how, frames := p.awaitClose()
		if how == "" {
			return broke(fmt.Sprintf("a header of %d: the peer did not close within %v (waiting for the body?)", n, k.timeout))
		}
		detail := fmt.Sprintf("a header of %d: the peer %s the connection after %v", n, how, time.Since(start).Round(time.Millisecond))
		if frames > 0 {
			detail += fmt.Sprintf(", having sent %d frames", frames)
		}
		return passed(detail)
	}
}

func checkDeliveredBefore(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return unreached(err)
	}
	defer p.Close()
	good := []byte(`{"before":"the offending frame"}`)
	n := uint32(k.cap) + 1
	if _, err := p.Write(append(appendFrame(nil, good), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))); err != nil {
		return broke(fmt.Sprintf("writing: %v", err))
	}
	m, err := p.recv()
	switch {
	case err != nil:
		return broke(fmt.Sprintf("the frame before the oversized one was not echoed: %s", readProblem(err)))
	case !jsonEqual(m, good):
		return broke(fmt.Sprintf("sent %s, got %s", clip(good), clip(m)))
	}
	if how, _ := p.awaitClose(); how == "" {
		return broke(fmt.Sprintf("the good frame was echoed, but the peer did not close within %v on the oversized header", k.timeout))
	}
	return passed("the good frame was echoed, then the connection closed")
}

// invalidCase sends a payload that is not one JSON value. A peer that
// validates must close (§3); for one that does not, the case says what it
// did.
func invalidCase(id, title, payload string) checkCase {
	return checkCase{id, "§3", title, func(ctx context.Context, k *checker) finding {
		p, err := k.open(ctx)
		if err != nil {
			return unreached(err)
		}
		defer p.Close()
		if err := p.send([]byte(payload)); err != nil {
			return broke(fmt.Sprintf("sending: %v", err))
		}
		if !k.validates {
			// Nothing is required: a second shows what the peer does.
			p.SetReadDeadline(time.Now().Add(min(time.Second, k.timeout)))
		}
		how, frames := p.awaitClose()
		did := fmt.Sprintf("the peer %s the connection", how)
		switch {
		case how == "" && frames > 0:
			did = fmt.Sprintf("the peer echoed it (%d frames) and kept the connection", frames)
		case how == "":
			did = "the peer neither answered nor closed"
		case frames > 0:
			did = fmt.Sprintf("the peer echoed it (%d frames), then %s the connection", frames, how)
		}
		switch {
		case !k.validates:
			return measured(did + " (it does not validate: -validate=false)")
		case how == "" || frames > 0:
			return broke(did + ": a peer that validates must close without delivering it")
		}
		return passed(did)
	}, ruleCloseInvalid}
}

func checkInvalidUTF8(ctx context.Context, k *checker) finding {
	payload := []byte("\"bad \xff\xfe bytes\"")
	p, got := echoes(ctx, k, [][]byte{payload})
	switch {
	case !p.ok():
		return measured(p.detail)
	case bytes.Equal(got[0], payload):
		return measured("echoed byte for byte")
	}
	return measured(fmt.Sprintf("echoed as %s", clip(got[0])))
}

func checkDeepNesting(ctx context.Context, k *checker) finding {
	const depth = 10000
	payload := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
	if len(payload) > k.cap {
		return measured(fmt.Sprintf("not run: %d bytes is over the peer's cap", len(payload)))
	}
	if p, _ := echoes(ctx, k, [][]byte{payload}); !p.ok() {
		return measured(fmt.Sprintf("%d levels: %s", depth, p.detail))
	}
	return measured(fmt.Sprintf("%d levels echoed equal", depth))
}

func checkHalfClose(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return unreached(err)
	}
	defer p.Close()
	cw, ok := p.Conn.(interface{ CloseWrite() error })
	if !ok {
		return measured(fmt.Sprintf("not run: %T cannot half-close", p.Conn))
	}
	payloads := [][]byte{[]byte(`"one"`), []byte(`"two"`), []byte(`"three"`)}
	if err := p.send(payloads...); err != nil {
		return broke(fmt.Sprintf("sending: %v", err))
	}
	if err := cw.CloseWrite(); err != nil {
		return broke(fmt.Sprintf("half-closing: %v", err))
	}
	got := 0
	for ; got < len(payloads); got++ {
		m, err := p.recv()
		if err != nil {
			if closeKind(err) == "" {
				return broke(fmt.Sprintf("after our half-close the peer answered %d of %d messages and then nothing within %v", got, len(payloads), k.timeout))
			}
			return broke(fmt.Sprintf("after our half-close the peer answered %d of %d messages, then %s", got, len(payloads), readProblem(err)))
		}
		if !jsonEqual(m, payloads[got]) {
			p := echoProblem(fmt.Sprintf("echo %d of %d", got+1, len(payloads)), payloads[got], m)
			return p.broke("")
		}
	}
	if how, _ := p.awaitClose(); how == "" {
		return measured(fmt.Sprintf("the peer answered all %d messages but kept its side open for %v", len(payloads), k.timeout))
	}
	return passed(fmt.Sprintf("the peer answered all %d messages, then closed", len(payloads)))
}

func checkResetMidFrame(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return unreached(err)
	}
	frame := appendFrame(nil, []byte(`{"cut":"here"}`))
	p.Write(frame[:7])
	if tc, ok := p.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // Close sends a reset
	}
	p.Close()
	time.Sleep(200 * time.Millisecond) // time for the peer to take the reset in
	if p, _ := echoes(ctx, k, [][]byte{[]byte(`{"next":"connection"}`)}); !p.ok() {
		return p.broke("after a reset mid-frame on another connection: ")
	}
	return passed("the next connection was answered")
}

func checkConcurrent(ctx context.Context, k *checker) finding {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	for i := range k.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := [][]byte{[]byte(fmt.Sprintf(`{"conn":%d,"n":1}`, i)), []byte(fmt.Sprintf(`{"conn":%d,"n":2}`, i))}
			if p, _ := echoes(ctx, k, msgs); !p.ok() {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("connection %d: %s", i, p.detail))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		return measured(fmt.Sprintf("%d of %d concurrent connections were not answered; the first: %s", len(problems), k.conns, problems[0]))
	}
	return measured(fmt.Sprintf("all %d concurrent connections were answered", k.conns))
}

func checkStalledReader(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return measured(err.Error())
	}
	defer p.Close()
	const limit = 64 << 20 // a peer that takes this much without pushing back buffers it
	payload := sizePayload(min(k.cap, 16<<10))
	chunk := bytes.Repeat(appendFrame(nil, payload), max(1, (256<<10)/(len(payload)+4)))
	sent := 0
	for sent < limit {
		p.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := p.Write(chunk)
		sent += n
		if err != nil {
			if isTimeoutErr(err) {
				return passed(fmt.Sprintf("the peer pushed back: our writes blocked after %s sent unread", formatBytes(sent)))
			}
			return measured(fmt.Sprintf("after %s sent unread: %s", formatBytes(sent), readProblem(err)))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if sent < limit {
		return measured(fmt.Sprintf("the peer took %s with no echo read and had not pushed back when the case's time ran out", formatBytes(sent)))
	}
	return broke(fmt.Sprintf("the peer took %s with no echo read and never pushed back: it buffers without bound", formatBytes(sent)))
}

// formatBytes writes n in KiB or MiB.
func formatBytes(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

func checkDrip(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return measured(err.Error())
	}
	defer p.Close()
	frame := appendFrame(nil, []byte(`{"drip":"`+strings.Repeat("d", 200)+`"}`))
	start := time.Now()
	for i := range frame {
		if _, err := p.Write(frame[i : i+1]); err != nil {
			return measured(fmt.Sprintf("the peer cut the dripping frame after %v (%d bytes): %s", time.Since(start).Round(time.Millisecond), i, readProblem(err)))
		}
		select {
		case <-ctx.Done():
			return measured(fmt.Sprintf("the peer took %d bytes over %v without cutting the frame", i+1, time.Since(start).Round(time.Millisecond)))
		case <-time.After(100 * time.Millisecond):
		}
		// A peer that cut the frame has closed: the next write may not
		// fail for a while, but a read does.
		p.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := p.recv(); closeKind(err) != "" {
			return measured(fmt.Sprintf("the peer cut the dripping frame after %v (%d bytes)", time.Since(start).Round(time.Millisecond), i+1))
		}
		if dl, ok := ctx.Deadline(); ok {
			p.SetReadDeadline(dl)
		}
	}
	return measured(fmt.Sprintf("the peer waited for the whole frame, dripped over %v", time.Since(start).Round(time.Millisecond)))
}

func checkLatency(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return measured(err.Error())
	}
	defer p.Close()
	var rtts []time.Duration
	payload := []byte(`{"ping":"pong"}`)
	for range 1000 {
		start := time.Now()
		if err := p.send(payload); err != nil {
			return measured(fmt.Sprintf("after %d round trips: %v", len(rtts), err))
		}
		if _, err := p.recv(); err != nil {
			return measured(fmt.Sprintf("after %d round trips: %s", len(rtts), readProblem(err)))
		}
		rtts = append(rtts, time.Since(start))
		if ctx.Err() != nil {
			break
		}
	}
	return measured(latencySummary(rtts))
}

// latencySummary describes round-trip times by their percentiles.
func latencySummary(rtts []time.Duration) string {
	if len(rtts) == 0 {
		return "no round trips"
	}
	slices.Sort(rtts)
	q := func(f float64) time.Duration { return rtts[int(f*float64(len(rtts)-1))].Round(time.Microsecond) }
	return fmt.Sprintf("%d round trips: p50 %v, p90 %v, p99 %v, max %v", len(rtts), q(0.5), q(0.9), q(0.99), rtts[len(rtts)-1].Round(time.Microsecond))
}

func checkThroughput(ctx context.Context, k *checker) finding {
	p, err := k.open(ctx)
	if err != nil {
		return measured(err.Error())
	}
	defer p.Close()
	payload := sizePayload(min(k.cap, 1024))
	const window = 64
	batch := bytes.Repeat(appendFrame(nil, payload), window)
	start := time.Now()
	done := 0
	// A second, or half the case's timeout if that is shorter, so that the
	// last window's echoes come back within it.
	for time.Since(start) < min(time.Second, k.timeout/2) && ctx.Err() == nil {
		if _, err := p.Write(batch); err != nil {
			return measured(fmt.Sprintf("after %d messages: %v", done, err))
		}
		for range window {
			if _, err := p.recv(); err != nil {
				return measured(fmt.Sprintf("after %d messages: %s", done, readProblem(err)))
			}
			done++
		}
	}
	secs := time.Since(start).Seconds()
	return measured(fmt.Sprintf("%d messages of %d bytes echoed in %.2fs, %d in flight: %.0f msg/s, %.1f MB/s",
		done, len(payload), secs, window, float64(done)/secs, float64(done*len(payload))/secs/1e6))
}

// jsonEqual reports whether a and b hold equal JSON values: numbers equal
// as decimals, strings equal once decoded (escapes resolved, invalid UTF-8
// replaced with U+FFFD, as in Go), objects with the same members.
func jsonEqual(a, b []byte) bool {
	if !json.Valid(a) || !json.Valid(b) {
		// One value and nothing else: a Decoder would stop after the
		// first value and take "1 junk" for 1.
		return bytes.Equal(a, b) && json.Valid(a)
	}
	va, erra := decodeNumbers(a)
	vb, errb := decodeNumbers(b)
	if erra != nil || errb != nil {
		return bytes.Equal(a, b)
	}
	return valueEqual(va, vb)
}

func decodeNumbers(p []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(p))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func valueEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, oka := new(big.Rat).SetString(string(a))
		rb, okb := new(big.Rat).SetString(string(b))
		if !oka || !okb {
			return a == b
		}
		return ra.Cmp(rb) == 0
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for key, va := range a {
			vb, ok := b[key]
			if !ok || !valueEqual(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !valueEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// sleepCtx sleeps for d, or until ctx ends, and reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
