package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/jsonconn/jsonconn"
)

func TestConfigFrameCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *jsonconn.Config
		want int
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
