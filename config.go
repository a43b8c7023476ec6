package jsonconn

const (
	// DefaultMaxFrameSize is the frame cap used when Config.MaxFrameSize is
	// zero: 256 KiB (2^18 bytes) of payload, as in the Node.js JsonSocket
	// design the wire format follows.
	DefaultMaxFrameSize = 1 << 18

	// MaxFrameSizeLimit is the largest frame cap a Config can set: 1 GiB
	// (2^30 bytes). A larger Config.MaxFrameSize is treated as this, so that
	// the buffer for any frame fits in an int on every platform.
	MaxFrameSizeLimit = 1 << 30
)

// headerLen is the size of a frame's header: the payload length as a 4-byte
// big-endian unsigned integer.
const headerLen = 4

// A Config configures a Reader, Writer or Conn. A nil *Config and a zero
// Config both mean the defaults. The constructors read the Config once and keep
// no reference to it, so it may be reused or changed afterwards.
type Config struct {
	// MaxFrameSize is the frame cap: the largest payload, in bytes, that is
	// sent or accepted. Zero or negative means DefaultMaxFrameSize; values
	// above MaxFrameSizeLimit (1 GiB) are treated as MaxFrameSizeLimit. Both
	// ends of a connection should agree on it: a peer that announces a
	// longer frame is cut off, and a message that would exceed it is refused
	// before it is sent.
	MaxFrameSize int

	// DisableValidation turns off the JSON check of payloads: they are then
	// opaque bytes, possibly empty. Framing and the cap still apply. Turn it
	// off only when the payload is checked elsewhere, or to carry another
	// encoding in the same frames.
	DisableValidation bool

	// Marshal, if not nil, encodes values for Send in place of
	// encoding/json (which Send uses compact and without HTML escaping).
	// Its output must be one JSON value; with validation on, Send checks it
	// and refuses an invalid one with an *InvalidJSONError before writing.
	// A faster JSON library's Marshal function fits here; so does one that
	// writes another encoding, with DisableValidation. The returned slice
	// must be the caller's to keep: Send may write it after Marshal has been
	// called again by another goroutine, so a Marshal that reuses one buffer
	// would corrupt messages. Marshal is called from many goroutines at
	// once (Send encodes outside the Conn's locks, and a Server or Listener
	// shares its Config among its connections), so it must be safe for
	// concurrent use, as json.Marshal is.
	Marshal func(v any) ([]byte, error)

	// Unmarshal, if not nil, decodes payloads for Receive in place of
	// json.Unmarshal. With validation on, Receive validates each payload
	// first, since the replacement may not; an error from Unmarshal then
	// consumes the message and leaves the stream in sync. data is valid only
	// during the call, as for json.Unmarshaler: it lives in a pooled buffer,
	// so a decoder that keeps references into it must copy. Like Marshal,
	// Unmarshal is called from many goroutines at once and must be safe for
	// concurrent use.
	Unmarshal func(data []byte, v any) error
}

// maxFrameSize returns the frame cap of cfg, which may be nil.
func (cfg *Config) maxFrameSize() int {
	switch {
	case cfg == nil || cfg.MaxFrameSize <= 0:
		return DefaultMaxFrameSize
	case cfg.MaxFrameSize > MaxFrameSizeLimit:
		return MaxFrameSizeLimit
	}
	return cfg.MaxFrameSize
}
