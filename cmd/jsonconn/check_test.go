package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/jsonconntest"
)

// checkReport runs check against addr with args, in process, and returns
// its exit status and parsed -json report.
func checkReport(t *testing.T, addr string, args ...string) (int, jsonconntest.Report) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(append([]string{"check", "-json"}, args...), addr)
	status := run(args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	var rep jsonconntest.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("check %v: status %d, stdout not a JSON report (%v):\n%s\nstderr:\n%s", args, status, err, stdout.String(), stderr.String())
	}
	return status, rep
}

// mangler serves echo peers that change é into e in what they echo, a
// §1 failure, until the test ends.
func mangler(t *testing.T) string {
	t.Helper()
	return rawServer(t, func(c net.Conn) {
		r := jsonconn.NewReader(c, nil)
		w := jsonconn.NewWriter(c, nil)
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if _, err := w.Write(bytes.ReplaceAll(m, []byte("é"), []byte("e"))); err != nil {
				return
			}
		}
	})
}

// TestCheckListenEcho checks jsonconn listen -echo with the suite, both as
// child processes: it passes with no failure, within the 30 s the issue
// allows.
func TestCheckListenEcho(t *testing.T) {
	t.Parallel()
	l := start(t, strings.NewReader(""), "listen", "-echo", "127.0.0.1:0")
	addr := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	start := time.Now()
	c := expect(t, exitOK, "", "check", addr)
	took := time.Since(start)
	out := c.stdout.String()
	if !regexp.MustCompile(`\n31 cases: \d+ pass, 0 non-strict, 0 fail, \d+ info\n$`).MatchString(out) {
		t.Errorf("check of listen -echo:\n%s", out)
	}
	t.Logf("check of listen -echo took %v", took)
	if took > 30*time.Second {
		t.Errorf("the default run took %v, want under 30 s", took)
	}
}

// TestCheckUnreachable checks that a peer that is not there gets a status
// of its own, distinct from a failed case.
func TestCheckUnreachable(t *testing.T) {
	t.Parallel()
	// A socket path nobody listens on, which no other test can take, as
	// it could a loopback port just closed.
	addr := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	p := expect(t, exitUnreachable, "", "check", "-timeout", "2s", addr)
	if !strings.Contains(p.stderr.String(), "cannot reach the peer") {
		t.Errorf("stderr = %q", p.stderr)
	}
}

// TestCheckReports checks the -json document and the JUnit XML: every case
// with its section and verdict, failures as JUnit failures.
func TestCheckReports(t *testing.T) {
	t.Parallel()
	addr := mangler(t)
	junit := filepath.Join(t.TempDir(), "check.xml")
	status, rep := checkReport(t, addr, "-run", `^1\.(1|2|3|13)$`, "-junit", junit)
	if status != exitError || rep.Target != addr || rep.Summary.Cases != 4 || rep.Summary.Fail != 2 || rep.Summary.Pass != 2 {
		t.Fatalf("status %d, report %+v", status, rep)
	}
	for _, c := range rep.Cases {
		if c.ID == "" || !strings.HasPrefix(c.Section, "§") || c.Title == "" || c.Detail == "" || c.Verdict == "" {
			t.Errorf("incomplete case in the report: %+v", c)
		}
		if c.Verdict == jsonconntest.Fail && !strings.HasPrefix(c.Rule, "§1 A receiver MUST deliver") {
			t.Errorf("case %s fails without quoting its rule: %+v", c.ID, c)
		}
	}
	raw, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(raw, &suite); err != nil {
		t.Fatalf("JUnit XML: %v\n%s", err, raw)
	}
	failures := 0
	for _, c := range suite.Cases {
		if c.Failure != nil {
			failures++
		}
	}
	if suite.Tests != 4 || suite.Failures != 2 || failures != 2 || len(suite.Cases) != 4 {
		t.Errorf("JUnit: %d tests, %d failures (%d failure elements) in %d testcases; want 4, 2, 2, 4\n%s", suite.Tests, suite.Failures, failures, len(suite.Cases), raw)
	}
}

// TestCheckNotFramedJSON: check of an HTTP server ends at once with exit
// status 4 and a line that says the peer speaks HTTP, instead of failing
// every case after its timeout.
func TestCheckNotFramedJSON(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: hang}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := expect(t, exitUnreachable, "", "check", ln.Addr().String())
	if !strings.Contains(p.stderr.String(), "the peer speaks HTTP, not framed JSON") {
		t.Errorf("stderr = %q", p.stderr)
	}
	if p.stdout.String() != "" {
		t.Errorf("stdout = %q; want nothing: no case ran", p.stdout)
	}
}
