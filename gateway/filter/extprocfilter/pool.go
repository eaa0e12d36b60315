package extprocfilter

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// idleConnTimeout is how long an unused processor connection is kept.
const idleConnTimeout = 5 * time.Minute

// errPoolClosed is returned once the pool has been closed.
var errPoolClosed = errors.New("ext_proc connection pool closed")

// connPool holds one gRPC client connection (HTTP/2 over cleartext) per
// processor address and :authority. Connections idle for idleConnTimeout
// are closed the next time the pool is used, so no goroutine is needed.
type connPool struct {
	log *slog.Logger

	mu     sync.Mutex
	conns  map[connKey]*pooledConn
	closed bool
}

type connKey struct {
	target, authority string
	tls               *tls.Config // the cluster's (a cluster update makes a new one)
}

type pooledConn struct {
	cc       *grpc.ClientConn
	active   int
	lastUsed time.Time
}

func newConnPool(logger *slog.Logger) *connPool {
	return &connPool{log: logger, conns: map[connKey]*pooledConn{}}
}

// get returns a connection to target ("host:port" dialled directly when
// direct, otherwise a gRPC target URI), over TLS with tlsCfg when it is not
// nil (the cluster's transport socket), and a release function to call when
// the stream using it is over.
func (p *connPool) get(target, authority string, direct bool, connectTimeout time.Duration, tlsCfg *tls.Config) (*grpc.ClientConn, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, errPoolClosed
	}
	now := time.Now()
	for k, pc := range p.conns {
		if pc.active == 0 && now.Sub(pc.lastUsed) > idleConnTimeout {
			_ = pc.cc.Close()
			delete(p.conns, k)
		}
	}
	key := connKey{target, authority, tlsCfg}
	pc, ok := p.conns[key]
	if !ok {
		if connectTimeout <= 0 {
			connectTimeout = 5 * time.Second
		}
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
				MinConnectTimeout: connectTimeout,
			}),
		}
		if authority != "" {
			opts = append(opts, grpc.WithAuthority(authority))
		}
		dialTarget := target
		if direct {
			d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
			opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				conn, err := d.DialContext(ctx, "tcp", addr)
				if err != nil || tlsCfg == nil {
					return conn, err
				}
				// TLS is the cluster's transport socket, below gRPC, as in Envoy: the SNI
				// and the certificate checks are the socket's, the :authority gRPC's.
				cfg := tlsCfg.Clone()
				if len(cfg.NextProtos) == 0 {
					cfg.NextProtos = []string{"h2"}
				}
				tc := tls.Client(conn, cfg)
				if err := tc.HandshakeContext(ctx); err != nil {
					conn.Close()
					return nil, err
				}
				return tc, nil
			}))
			dialTarget = "passthrough:///" + target
		}
		cc, err := grpc.NewClient(dialTarget, opts...)
		if err != nil {
			return nil, nil, err
		}
		pc = &pooledConn{cc: cc}
		p.conns[key] = pc
		p.log.Debug("ext_proc connection created", "target", target)
	}
	pc.active++
	pc.lastUsed = now
	var once sync.Once
	return pc.cc, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			pc.active--
			pc.lastUsed = time.Now()
		})
	}, nil
}

// closeAll closes every connection; later gets fail.
func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, pc := range p.conns {
		_ = pc.cc.Close()
		delete(p.conns, k)
	}
}
