package jsonconntest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report as `jsonconn check` prints it: one line per
// case (see Result.String), a blank line, why the run stopped if it did,
// and the summary.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, r := range rep.Cases {
		fmt.Fprintln(&b, r)
	}
	b.WriteString("\n")
	if rep.Stopped != "" {
		fmt.Fprintf(&b, "stopped: %s\n", rep.Stopped)
	}
	fmt.Fprintln(&b, rep.Summary)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one indented JSON document, the one
// `jsonconn check -json` prints.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

// WriteJUnit writes the report as JUnit XML: one testcase per case, a
// failure for each Fail (its message the section and title, its text the
// detail and the rule), a skipped element for each Skipped, and the verdict
// and detail of every case as its output.
func (rep *Report) WriteJUnit(w io.Writer) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      float64  `xml:"time,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
		SystemOut string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Time     float64    `xml:"time,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	ts := testsuite{Name: strings.TrimSpace("jsonconn check " + rep.Target), Tests: len(rep.Cases), Failures: rep.Summary.Fail, Skipped: rep.Summary.Skipped}
	for _, r := range rep.Cases {
		out := string(r.Verdict) + ": " + r.Detail
		if r.Rule != "" {
			out += "\nrule: " + r.Rule
		}
		tc := testcase{
			Name:      r.ID + " " + r.Title,
			Classname: "protocol." + strings.TrimPrefix(r.Section, "§"),
			Time:      float64(r.MS) / 1000,
			SystemOut: out,
		}
		switch r.Verdict {
		case Fail:
			text := r.Detail
			if r.Rule != "" {
				text += "\nrule: " + r.Rule
			}
			tc.Failure = &failure{Message: r.Section + " " + r.Title, Text: text}
		case Skipped:
			tc.Skipped = &skipped{Message: r.Detail}
		}
		ts.Time += tc.Time
		ts.Cases = append(ts.Cases, tc)
	}
	out, err := xml.MarshalIndent(ts, "", "  ")
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, xml.Header+string(out)+"\n")
	return err
}
