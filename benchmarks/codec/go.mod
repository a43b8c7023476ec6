// Module codec measures what a faster JSON library buys when plugged into
// jsonconn through Config.Marshal and Config.Unmarshal. It is a module of its
// own so that the library itself does not depend on that library.
module github.com/jsonconn/jsonconn/benchmarks/codec

go 1.23.0

require github.com/jsonconn/jsonconn v0.0.0

require github.com/goccy/go-json v0.10.5

replace github.com/jsonconn/jsonconn => ../..
