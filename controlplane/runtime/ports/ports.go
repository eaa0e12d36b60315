// Package ports hands out free loopback ports to the instances the local runtimes start
// (through controlplane/runtime/supervise), each instance's PORT.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// From is the lowest port an Allocator hands out.
const From = 10000

// Allocator picks free ports and remembers which it handed out until they are released.
type Allocator struct {
	mu    sync.Mutex
	taken map[int]bool
}

// New makes an Allocator.
func New() *Allocator { return &Allocator{taken: map[int]bool{}} }

// Get picks a free port no other holder of this Allocator has. It draws at random from below
// the kernel's ephemeral range (ip_local_port_range), where outgoing connections take their
// local ports: a port found free inside that range can be taken by a new connection between
// the check and the app's own bind. Free means bindable on the wildcard address, as apps listen
// on ":$PORT". Without room below the range it asks the kernel for any port.
func (a *Allocator) Get() (int, error) {
	lo, hi := Range()
	for range 50 {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			if port == 0 {
				return 0, fmt.Errorf("picking a free port: %w", err)
			}
			continue // in use
		}
		port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		a.mu.Lock()
		taken := a.taken[port]
		a.taken[port] = true
		a.mu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, errors.New("picking a free port: every port tried is taken")
}

// Release gives a port back.
func (a *Allocator) Release(port int) {
	a.mu.Lock()
	delete(a.taken, port)
	a.mu.Unlock()
}

// Range is where ports are drawn from: [From, start of the ephemeral range), or an empty range
// when the system's range cannot be read or leaves too little room.
func Range() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start-From < 1000 {
		return 0, 0
	}
	return From, start
}
