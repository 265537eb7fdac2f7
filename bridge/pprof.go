package bridge

import (
	"net/http"
	"net/http/pprof"
)

// mountPProf serves Go's profiler under /debug/pprof/ (admin.pprof):
// CPU, heap, goroutine, mutex and block profiles and execution traces of
// the live process, for `go tool pprof http://<admin.listen>/debug/pprof/profile`.
// It is mounted on the admin listener only, never beside the webhooks.
func mountPProf(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // the index, and every named profile (heap, goroutine, ...)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
