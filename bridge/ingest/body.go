package ingest

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Body buffers start small and grow only as bytes arrive, so that a
// Content-Length costs nothing until the bytes it announces are sent.
const (
	initialBodyBuf = 4 << 10
	// pooledBodyBuf is the largest buffer kept for reuse; larger ones are
	// rare and left to the garbage collector.
	pooledBodyBuf = 64 << 10
)

// maxBodyTime bounds the whole body however steadily it trickles in, so
// that a client sending a byte just within every idle timeout cannot keep
// a connection for ever: 1 MiB at 4 KB/s still fits.
const maxBodyTime = 5 * time.Minute

// errBusy is returned when the bodies in flight hold the whole budget.
var errBusy = errors.New("too many request bodies in flight")

// budget caps the bytes held by every body being read at once. It never
// blocks: a request over it is told to retry.
type budget struct {
	max  int64
	used atomic.Int64
}

func (b *budget) acquire(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (b *budget) release(n int64) { b.used.Add(-n) }

// bodyReader reads request bodies into pooled buffers within a budget.
type bodyReader struct {
	limit  int64         // the largest body
	idle   time.Duration // the longest wait for the next bytes
	budget *budget
	pool   sync.Pool // *[]byte
}

func newBodyReader(limit, inflight int64, idle time.Duration) *bodyReader {
	r := &bodyReader{limit: limit, idle: idle, budget: &budget{max: inflight}}
	r.pool.New = func() any { b := make([]byte, 0, initialBodyBuf); return &b }
	return r
}

// body is one request's body; release gives its buffer back.
type body struct {
	r    *bodyReader
	buf  *[]byte
	held int64 // bytes of the budget this body holds
}

// Bytes is the body read; it is valid until release.
func (b *body) Bytes() []byte { return *b.buf }

func (b *body) release() {
	if b == nil || b.buf == nil {
		return
	}
	b.r.budget.release(b.held)
	if cap(*b.buf) <= pooledBodyBuf {
		*b.buf = (*b.buf)[:0]
		b.r.pool.Put(b.buf)
	}
	b.buf = nil
}

// read reads the body of req: at most limit bytes (else an
// *http.MaxBytesError), each read within the idle timeout (the deadline
// moves on with every byte that arrives) and all within maxBodyTime, the
// buffer growing only as bytes
// arrive and only within the budget (else errBusy). Release the body
// after use, also after an error.
func (r *bodyReader) read(rw http.ResponseWriter, req *http.Request) (*body, error) {
	b := &body{r: r}
	if req.ContentLength > r.limit { // refused before a byte is read
		return b, &http.MaxBytesError{Limit: r.limit}
	}
	src := http.MaxBytesReader(rw, req.Body, r.limit)
	rc := http.NewResponseController(rw)
	last := time.Now().Add(maxBodyTime)
	b.buf = r.pool.Get().(*[]byte)
	if !r.grow(b, int64(cap(*b.buf))) {
		return b, errBusy
	}
	for {
		buf := *b.buf
		if len(buf) == cap(buf) {
			// Growing fourfold keeps what is allocated within a few times
			// what arrived, with few copies; the announced length only
			// caps it. One byte past the end lets MaxBytesReader tell
			// "exactly the limit" from "more", and the reader see EOF.
			target := 4 * int64(cap(buf))
			if req.ContentLength > 0 {
				target = min(target, req.ContentLength+1)
			}
			target = max(min(target, r.limit+1), int64(cap(buf))+1)
			if !r.grow(b, target-int64(cap(buf))) {
				return b, errBusy
			}
			bigger := make([]byte, len(buf), target)
			copy(bigger, buf)
			buf = bigger
		}
		// Not supported by every ResponseWriter (tests' recorders): then
		// the server's own timeouts are all there is.
		_ = rc.SetReadDeadline(minTime(time.Now().Add(r.idle), last))
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		*b.buf = buf
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// grow takes n more bytes of the budget for b.
func (r *bodyReader) grow(b *body, n int64) bool {
	if !r.budget.acquire(n) {
		return false
	}
	b.held += n
	return true
}
