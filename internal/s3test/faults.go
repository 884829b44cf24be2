package s3test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Fault is what a FaultProxy does to one ranged GET of an object.
type Fault int

// The faults a FaultProxy injects.
const (
	Pass      Fault = iota // forward untouched
	Reset                  // a third of the body, then a TCP RST
	SlowDown               // 503 SlowDown with Retry-After: 1
	Stall                  // a third of the body, then nothing until the client gives up
	Truncate               // a third of the body, then a clean close
	FlipByte               // the whole body with one byte flipped
	Forbidden              // 403 AccessDenied
)

// FaultProxy forwards S3 requests to a server and injects faults into object reads
// (GETs with a Range header): Decide says, for the n-th ranged GET (from 0), what
// goes wrong. Other requests (HEAD, list, the manifest's plain GET) pass.
type FaultProxy struct {
	// URL is the proxy's endpoint: give it to clients instead of the server's.
	URL    string
	Decide func(n int64) Fault
	Gets   atomic.Int64
	Faults atomic.Int64

	rp     *httputil.ReverseProxy
	target *url.URL
	srv    *httptest.Server
	mu     sync.Mutex
	stalls []chan struct{}
}

// NewFaultProxy starts a proxy towards addr (a Server's Addr), stopped at the end
// of the test.
func NewFaultProxy(t testing.TB, addr string, decide func(n int64) Fault) *FaultProxy {
	p := &FaultProxy{Decide: decide, target: &url.URL{Scheme: "http", Host: addr}}
	p.rp = httputil.NewSingleHostReverseProxy(p.target) // keeps the Host header: SigV4 still verifies
	p.srv = httptest.NewServer(p)
	p.URL = p.srv.URL
	t.Cleanup(func() {
		p.mu.Lock()
		for _, c := range p.stalls {
			close(c)
		}
		p.stalls = nil
		p.mu.Unlock()
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.Header.Get("Range") == "" {
		p.rp.ServeHTTP(w, r)
		return
	}
	n := p.Gets.Add(1) - 1
	kind := p.Decide(n)
	if kind != Pass {
		p.Faults.Add(1)
	}
	switch kind {
	case Pass:
		p.rp.ServeHTTP(w, r)
		return
	case SlowDown:
		w.Header().Set("Retry-After", "1")
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	case Forbidden:
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = p.target.Scheme, p.target.Host, ""
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, "proxy: upstream failed", http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, "proxy: upstream failed", http.StatusBadGateway)
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if kind == FlipByte {
		body[len(body)/2] ^= 0x01
		w.Write(body)
		return
	}
	w.Write(body[:len(body)/3])
	w.(http.Flusher).Flush()
	if kind == Stall {
		c := make(chan struct{})
		p.mu.Lock()
		p.stalls = append(p.stalls, c)
		p.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-c:
		}
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && kind == Reset {
		tc.SetLinger(0)
	}
	conn.Close()
}

// s3Error writes an S3 error response.
func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>proxy</RequestId></Error>`, code, msg)
}
