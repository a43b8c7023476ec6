package codec_test

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"

	gojson "github.com/goccy/go-json"

	"github.com/jsonconn/jsonconn"
)

// These types and sizes match the main module's bench_test.go.
type item struct {
	ID    int64    `json:"id"`
	Name  string   `json:"name"`
	Email string   `json:"email"`
	Tags  []string `json:"tags"`
	Score float64  `json:"score"`
}

type message struct {
	Kind  string `json:"kind"`
	Seq   int64  `json:"seq"`
	Item  item   `json:"item"`
	Items []item `json:"items,omitempty"`
}

func makeMessage(items int) message {
	mk := func(i int) item {
		return item{ID: int64(1000 + i), Name: fmt.Sprintf("user %d", i), Email: fmt.Sprintf("user%d@example.com", i), Tags: []string{"alpha", "beta"}, Score: float64(i) * 1.25}
	}
	m := message{Kind: "update", Seq: 42, Item: mk(0)}
	for i := 1; i <= items; i++ {
		m.Items = append(m.Items, mk(i))
	}
	return m
}

// TestGoJSONRoundTrip checks that the plugged-in codec carries the message
// intact, so the benchmark measures working code.
func TestGoJSONRoundTrip(t *testing.T) {
	a, b := net.Pipe()
	cfg := &jsonconn.Config{Marshal: gojson.Marshal, Unmarshal: gojson.Unmarshal}
	ca, cb := jsonconn.New(a, cfg), jsonconn.New(b, cfg)
	defer ca.Close()
	defer cb.Close()
	want := makeMessage(3)
	go ca.Send(&want)
	var got message
	if err := cb.Receive(&got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// BenchmarkObjects compares Send/Receive with encoding/json, with go-json
// plugged in through Config, and NDJSON with encoding/json, over loopback TCP.
//
//	go test -run '^$' -bench . -benchmem -count 6 | benchstat -col /impl -
func BenchmarkObjects(b *testing.B) {
	for _, size := range []struct {
		name  string
		items int
	}{{"small", 0}, {"4KiB", 33}} {
		msg := makeMessage(size.items)
		payload, _ := json.Marshal(msg)
		for _, impl := range []struct {
			name string
			cfg  *jsonconn.Config
		}{
			{"SendReceive", nil},
			{"SendReceive+go-json", &jsonconn.Config{Marshal: gojson.Marshal, Unmarshal: gojson.Unmarshal}},
		} {
			b.Run("size="+size.name+"/impl="+impl.name, func(b *testing.B) {
				w, r := pair(b)
				jw, jr := jsonconn.New(w, impl.cfg), jsonconn.New(r, impl.cfg)
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				var wg sync.WaitGroup
				wg.Add(1)
				b.ResetTimer()
				go func() {
					defer wg.Done()
					for i := 0; i < b.N; i++ {
						if err := jw.Send(&msg); err != nil {
							b.Error(err)
							return
						}
					}
				}()
				for i := 0; i < b.N; i++ {
					var m message
					if err := jr.Receive(&m); err != nil {
						b.Fatal(err)
					}
				}
				wg.Wait()
			})
		}
	}
}

func pair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := <-accepted
	if r == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() { w.Close(); r.Close() })
	return w, r
}
