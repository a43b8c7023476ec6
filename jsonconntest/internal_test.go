package jsonconntest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckVectorsAreTheProtocols keeps the sender vectors equal to the
// rows of docs/protocol.md that a sender produces: those that end in a clean
// end of stream and have bytes.
func TestCheckVectorsAreTheProtocols(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	inTable := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "| name | cap |") {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		stream := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if !strings.HasSuffix(strings.TrimSpace(cells[3]), "`io.EOF`") || stream == "(empty)" {
			continue
		}
		want = append(want, strings.TrimSpace(cells[0])+" "+strings.ReplaceAll(stream, " ", ""))
	}
	var got []string
	for _, v := range senderVectors {
		if _, err := hex.DecodeString(v.stream); err != nil {
			t.Fatalf("vector %q: %v", v.name, err)
		}
		got = append(got, v.name+" "+v.stream)
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("the sender vectors:\n%s\nprotocol.md's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRulesAreGenerated regenerates rules_gen.go from docs/protocol.md and
// compares: a rule changed in the spec and not in the package fails here.
func TestRulesAreGenerated(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "rules_gen.go")
	cmd := exec.Command("go", "run", "gen_rules.go", "-in", "../docs/protocol.md", "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_rules.go: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("rules_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rules_gen.go is not what docs/protocol.md gives: run go generate ./jsonconntest\n%s", want)
	}
}

// TestRuleKeys: every case that checks a rule names one that protocol.md
// states, in exactly one sentence, with MUST or SHOULD; and the cases that
// find a rule broken say so of the rules their titles promise.
func TestRuleKeys(t *testing.T) {
	t.Parallel()
	keys := []string{ruleByteLength, ruleWhole, ruleAcceptUpToCap, ruleCheckHeader, ruleJSON, ruleCloseInvalid, ruleHalfClose, ruleDeliverBefore, ruleFlowControl, ruleIndependent}
	for _, c := range checkCases {
		if c.rule != "" && !slices.Contains(keys, c.rule) {
			keys = append(keys, c.rule)
		}
	}
	for _, key := range keys {
		var found []protocolRule
		for _, r := range protocolRules {
			if strings.Contains(r.text, key) {
				found = append(found, r)
			}
		}
		if len(found) != 1 {
			t.Errorf("rule key %q is in %d sentences of protocol.md, want 1: %v", key, len(found), found)
			continue
		}
		if v := found[0].verdict(); v != Fail && v != NonStrict {
			t.Errorf("rule %q has no MUST or SHOULD", found[0].text)
		}
	}
}

// TestVerdictsFollowSection9 reads the verdict table of protocol.md §9 and
// checks that a broken rule's verdict follows it: a MUST or MUST NOT is
// fail, a SHOULD or SHOULD NOT is non-strict.
func TestVerdictsFollowSection9(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	table := map[Verdict]string{}
	for _, line := range strings.Split(string(md), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) == 2 {
			table[Verdict(strings.TrimSpace(cells[0]))] = strings.TrimSpace(cells[1])
		}
	}
	for _, tc := range []struct {
		word string
		want Verdict
	}{{"MUST", Fail}, {"MUST NOT", Fail}, {"SHOULD", NonStrict}, {"SHOULD NOT", NonStrict}} {
		if !strings.Contains(table[tc.want], "a "+tc.word+" ") && !strings.Contains(table[tc.want], "or "+tc.word+" ") {
			t.Errorf("§9 gives %s the meaning %q, which does not name %s", tc.want, table[tc.want], tc.word)
		}
		if got := (protocolRule{text: "A receiver " + tc.word + " do it."}).verdict(); got != tc.want {
			t.Errorf("a broken %s rule gets %s, want %s as §9 says", tc.word, got, tc.want)
		}
	}
	for _, v := range []Verdict{Pass, NonStrict, Fail, Info, Skipped} {
		if table[v] == "" {
			t.Errorf("§9's table has no row for %s", v)
		}
	}
}
