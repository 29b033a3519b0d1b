package rocketmq

import (
	"compress/zlib"
	"errors"
	"sync"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// The Publisher compresses bodies itself, with the client's own defaults (zlib level 5 from 4 KiB), and turns
// the client's compression off: the client keeps a compressed body even when it came out longer, and the broker
// checks the body it receives against its maxMessageSize, so a 4 MiB payload of random bytes (4 MiB plus zlib's
// framing once compressed) was refused. Keeping a compressed body only when it is shorter makes the body the
// broker sees never longer than the payload, which is what Limits.Check can promise at enqueue time.
const (
	compressFrom  = 4 << 10
	compressLevel = 5
)

var zlibWriters = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, compressLevel) // a valid level: no error
	return w
}}

// errNotSmaller stops a compression whose output has reached the size of its input.
var errNotSmaller = errors.New("compressed body is not smaller")

// boundedBuffer collects at most max bytes and fails past that, so an incompressible body costs no second copy of
// its own size.
type boundedBuffer struct {
	b   []byte
	max int
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.max {
		return 0, errNotSmaller
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// sampleFrom and sampleLen: a body of sampleFrom bytes or more is compressed only when its first sampleLen
// bytes shrink, so that random or already compressed payloads (images, archives) cost one small attempt rather
// than a full one.
const (
	sampleFrom = 256 << 10
	sampleLen  = 32 << 10
)

// compress gives a message sent alone its compressed body when that is shorter than the body (the client sends
// it with the compressed flag, and consumers inflate it). Batched messages are never compressed: the client sends
// a batch's bodies as they are.
func compress(msg *primitive.Message) {
	body := msg.Body
	if len(body) < compressFrom || msg.Compress {
		return
	}
	if len(body) >= sampleFrom {
		if _, ok := deflate(body[:sampleLen], sampleLen-sampleLen/32); !ok {
			return
		}
	}
	if c, ok := deflate(body, len(body)-1); ok {
		msg.CompressedBody, msg.Compress = c, true
	}
}

// deflate returns b compressed as the client would (zlib, level 5), or false when that takes more than max bytes.
func deflate(b []byte, max int) ([]byte, bool) {
	out := &boundedBuffer{b: make([]byte, 0, min(len(b)/2, max)), max: max}
	w := zlibWriters.Get().(*zlib.Writer)
	defer zlibWriters.Put(w)
	w.Reset(out)
	if _, err := w.Write(b); err != nil {
		return nil, false
	}
	if err := w.Close(); err != nil {
		return nil, false
	}
	return out.b, true
}
