package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"

	"github.com/jsonconn/jsonconn"
)

func TestConfigFrameCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *jsonconn.Config
		want int64
	}{
		{"nil", nil, jsonconn.DefaultMaxFrameSize},
		{"zero", &jsonconn.Config{}, jsonconn.DefaultMaxFrameSize},
		{"negative", &jsonconn.Config{MaxFrameSize: -1}, jsonconn.DefaultMaxFrameSize},
		{"small", &jsonconn.Config{MaxFrameSize: 10}, 10},
		{"huge", &jsonconn.Config{MaxFrameSize: math.MaxInt}, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The cap in force shows in the error for the largest header.
			r := jsonconn.NewReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)), tt.cfg)
			_, err := r.ReadMessage()
			var fse *jsonconn.FrameSizeError
			if !errors.As(err, &fse) || fse.Max != tt.want {
				t.Fatalf("got %v, want a *FrameSizeError with Max %d", err, tt.want)
			}
		})
	}
}

func TestConfigIsReadOnce(t *testing.T) {
	t.Parallel()
	cfg := &jsonconn.Config{MaxFrameSize: 64}
	var buf bytes.Buffer
	w := jsonconn.NewWriter(&buf, cfg)
	r := jsonconn.NewReader(&buf, cfg)
	cfg.MaxFrameSize = 1
	cfg.DisableValidation = true
	msg := `"` + strings.Repeat("x", 30) + `"`
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatalf("changing the Config after NewWriter changed the Writer: %v", err)
	}
	if _, err := w.Write([]byte(`not json`)); !errors.Is(err, jsonconn.ErrInvalidJSON) {
		t.Fatalf("changing the Config after NewWriter turned validation off: %v", err)
	}
	if m, err := r.ReadMessage(); err != nil || string(m) != msg {
		t.Fatalf("changing the Config after NewReader changed the Reader: %q, %v", m, err)
	}
	if cfg.MaxFrameSize != 1 || !cfg.DisableValidation {
		t.Fatal("the constructors modified the caller's Config")
	}
}

// TestConfigCodec plugs in a Marshal/Unmarshal pair and checks that Send and
// Receive use it, that its output is validated, and that its errors do not
// end the stream.
func TestConfigCodec(t *testing.T) {
	t.Parallel()
	var unmarshals int
	cfg := &jsonconn.Config{
		Marshal: func(v any) ([]byte, error) {
			if s, ok := v.(string); ok && s == "broken" {
				return []byte(`{"unterminated":`), nil
			}
			return json.Marshal(map[string]any{"wrapped": v})
		},
		Unmarshal: func(data []byte, v any) error {
			unmarshals++
			var w struct{ Wrapped json.RawMessage }
			if err := json.Unmarshal(data, &w); err != nil {
				return err
			}
			if w.Wrapped == nil {
				return errors.New("not wrapped")
			}
			return json.Unmarshal(w.Wrapped, v)
		},
	}
	var buf bytes.Buffer
	w := jsonconn.NewWriter(&buf, cfg)
	if err := w.Send(42); err != nil {
		t.Fatal(err)
	}
	if err := w.Send("broken"); !errors.Is(err, jsonconn.ErrInvalidJSON) {
		t.Fatalf("Send of a codec's invalid output = %v, want ErrInvalidJSON", err)
	}
	if _, err := w.Write([]byte(`{"plain":1}`)); err != nil { // not wrapped: Unmarshal refuses it
		t.Fatal(err)
	}
	if err := w.Send("last"); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), string(frames(`{"wrapped":42}`, `{"plain":1}`, `{"wrapped":"last"}`)); got != want {
		t.Fatalf("wire = %q, want %q", got, want)
	}

	r := jsonconn.NewReader(&buf, cfg)
	var n int
	if err := r.Receive(&n); err != nil || n != 42 {
		t.Fatalf("Receive = %d, %v", n, err)
	}
	if err := r.Receive(&n); err == nil || err.Error() != "not wrapped" {
		t.Fatalf("Receive of an unwrapped message = %v, want the codec's error", err)
	}
	var s string
	if err := r.Receive(&s); err != nil || s != "last" {
		t.Fatalf("Receive after a codec error = %q, %v; want the next message", s, err)
	}
	if unmarshals != 3 {
		t.Errorf("the codec's Unmarshal ran %d times, want 3", unmarshals)
	}

	// Validation still guards a replacement Unmarshal: invalid JSON from
	// the peer ends the stream before the codec sees it.
	r = jsonconn.NewReader(bytes.NewReader(frames(`{"wrapped":`)), cfg)
	if err := r.Receive(&n); !errors.Is(err, jsonconn.ErrInvalidJSON) || unmarshals != 3 {
		t.Fatalf("Receive of invalid JSON = %v (codec ran %d times), want ErrInvalidJSON before the codec", err, unmarshals)
	}
}

// TestConfigUnmarshalPanicReleasesLock: a panicking decoder must not leave
// the Conn's read lock held.
func TestConfigUnmarshalPanicReleasesLock(t *testing.T) {
	t.Parallel()
	cfg := &jsonconn.Config{Unmarshal: func(data []byte, v any) error {
		if string(data) == `"boom"` {
			panic("decoder exploded")
		}
		return json.Unmarshal(data, v)
	}}
	a, b := net.Pipe()
	ca, cb := jsonconn.New(a, cfg), jsonconn.New(b, cfg)
	defer ca.Close()
	defer cb.Close()
	go func() {
		ca.Send("boom")
		ca.Send("fine")
	}()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the decoder's panic did not reach the caller")
			}
		}()
		var s string
		cb.Receive(&s)
	}()
	done := async(func() error {
		var s string
		if err := cb.Receive(&s); err != nil || s != "fine" {
			return fmt.Errorf("Receive after a panic = %q, %v", s, err)
		}
		return nil
	})
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
}
