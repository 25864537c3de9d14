package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerOptions are the limits of the HTTP server and its TLS.
type ServerOptions struct {
	// ReadHeaderTimeout, ReadTimeout and WriteTimeout bound a request's
	// headers, its whole body, and the writing of its answer; IdleTimeout
	// closes a keep-alive connection with no request.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConnections caps open connections; one over the cap is answered 503
	// and closed at once, so that idle clients cannot hold the server's files.
	MaxConnections int
	// MaxHeaderBytes bounds request headers.
	MaxHeaderBytes int
	// TLSCert and TLSKey are PEM files: with both, the server speaks HTTPS only.
	TLSCert, TLSKey string
}

// Defaults of ServerOptions.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = 2 * time.Minute // a pipeline delete drains it first
	DefaultIdleTimeout       = time.Minute
	DefaultMaxConnections    = 512
	DefaultMaxHeaderBytes    = 64 << 10
)

// WithDefaults returns o with every unset limit at its default.
func (o ServerOptions) WithDefaults() ServerOptions {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return o
}

// Validate checks o.
func (o ServerOptions) Validate() error {
	var errs []error
	if (o.TLSCert == "") != (o.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if o.MaxConnections < 0 {
		errs = append(errs, errors.New("--max-connections must be positive"))
	}
	return errors.Join(errs...)
}

// HTTPServer returns an http.Server for h with o's limits, and ln wrapped
// with the connection cap and, when o names a certificate, TLS.
func HTTPServer(h http.Handler, ln net.Listener, o ServerOptions, log *slog.Logger) (*http.Server, net.Listener, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln = LimitListener(ln, o.MaxConnections, log)
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("load --tls-cert and --tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	return srv, ln, nil
}

// LimitListener returns ln with at most max connections open at once: a
// connection over the cap gets a 503 answer and is closed.
func LimitListener(ln net.Listener, max int, log *slog.Logger) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), log: log}
}

type limitListener struct {
	net.Listener
	sem    chan struct{}
	log    *slog.Logger
	warned sync.Once
}

// overCapBody is the body of the answer to a connection over the cap.
const overCapBody = `{"error":"too many open connections, try again later"}` + "\n"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.warned.Do(func() {
				l.log.Warn("connection cap reached: refusing connections over it (--max-connections)", "max", cap(l.sem))
			})
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s",
				len(overCapBody), overCapBody)
			_ = c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
