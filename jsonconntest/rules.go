package jsonconntest

import (
	"fmt"
	"strings"
)

//go:generate go run gen_rules.go

// A protocolRule is a sentence of docs/protocol.md that holds a key word,
// and its section.
type protocolRule struct{ section, text string }

// verdict returns the verdict of a case that finds the rule broken, as
// protocol.md §9 maps the rule's word: Fail for MUST and MUST NOT,
// NonStrict for SHOULD and SHOULD NOT. TestVerdictsFollowSection9 reads the
// mapping from §9.
func (r protocolRule) verdict() Verdict {
	switch {
	case strings.Contains(r.text, "MUST"):
		return Fail
	case strings.Contains(r.text, "SHOULD"):
		return NonStrict
	}
	return Fail // a case that found something broken with no rule to cite
}

// quote returns the rule as a report quotes it: its section and sentence.
func (r protocolRule) quote() string {
	if r.text == "" {
		return ""
	}
	return r.section + " " + r.text
}

// The keys of the rules the cases check: each is a phrase that occurs in
// exactly one sentence of protocolRules (TestRuleKeys).
const (
	ruleByteLength    = "MUST set N to the payload's length in bytes"
	ruleWhole         = "MUST deliver the payloads of a stream whole"
	ruleAcceptUpToCap = "MUST accept every frame with N up to its cap"
	ruleCheckHeader   = "MUST check N against its cap as soon as it has the 4 header bytes"
	ruleJSON          = "MUST be exactly one JSON value"
	ruleCloseInvalid  = "MUST close the connection when a payload is not valid"
	ruleHalfClose     = "SHOULD go on sending what it has to send"
	ruleDeliverBefore = "MUST deliver every complete, valid frame that precedes"
	ruleFlowControl   = "SHOULD read from the transport only as fast"
	ruleIndependent   = "MUST NOT let what happens on one connection"
)

// ruleFor returns the rule whose sentence holds key; the zero rule for "".
func ruleFor(key string) protocolRule {
	if key == "" {
		return protocolRule{}
	}
	for _, r := range protocolRules {
		if strings.Contains(r.text, key) {
			return r
		}
	}
	panic(fmt.Sprintf("jsonconntest: no rule of protocol.md says %q: run go generate", key))
}
