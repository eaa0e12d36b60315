package route

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// headerFormat is a header value with Envoy's substitution formatters
// (config/observability/access_log/usage, "Command operators") compiled: literal text and
// the commands the gateway implements, %DOWNSTREAM_REMOTE_ADDRESS%,
// %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% and %REQ(name)%; "%%" is a literal "%".
type headerFormat []formatPart

// formatPart is literal text, or one command.
type formatPart struct {
	literal string
	command formatCommand
	header  string // REQ's header name
}

type formatCommand int

const (
	literalText formatCommand = iota
	remoteAddress
	remoteAddressWithoutPort
	requestHeader
)

// parseHeaderFormat compiles v; a value without "%" is nil (a literal, the common case).
func parseHeaderFormat(v string) (headerFormat, error) {
	if !strings.Contains(v, "%") {
		return nil, nil
	}
	var f headerFormat
	for v != "" {
		i := strings.IndexByte(v, '%')
		if i < 0 {
			f = append(f, formatPart{literal: v})
			break
		}
		if i > 0 {
			f = append(f, formatPart{literal: v[:i]})
		}
		v = v[i+1:]
		if strings.HasPrefix(v, "%") {
			f = append(f, formatPart{literal: "%"})
			v = v[1:]
			continue
		}
		j := strings.IndexByte(v, '%')
		if j < 0 {
			return nil, fmt.Errorf("unterminated substitution formatter %%%s", v)
		}
		cmd := v[:j]
		v = v[j+1:]
		switch {
		case cmd == "DOWNSTREAM_REMOTE_ADDRESS":
			f = append(f, formatPart{command: remoteAddress})
		case cmd == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
			f = append(f, formatPart{command: remoteAddressWithoutPort})
		case strings.HasPrefix(cmd, "REQ(") && strings.HasSuffix(cmd, ")") && !strings.ContainsAny(cmd, "?:"):
			f = append(f, formatPart{command: requestHeader, header: cmd[len("REQ(") : len(cmd)-1]})
		default:
			return nil, fmt.Errorf("substitution formatter %%%s%% is not supported (only DOWNSTREAM_REMOTE_ADDRESS, DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT and REQ(name))", cmd)
		}
	}
	return f, nil
}

// expand is f's value for a request with headers h from remoteAddr (host:port).
func (f headerFormat) expand(h http.Header, remoteAddr string) string {
	var b strings.Builder
	for _, p := range f {
		switch p.command {
		case literalText:
			b.WriteString(p.literal)
		case remoteAddress:
			b.WriteString(remoteAddr)
		case remoteAddressWithoutPort:
			if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
				b.WriteString(host)
			} else {
				b.WriteString(remoteAddr)
			}
		case requestHeader:
			// Envoy writes "-" for a header that is absent.
			if v := h.Get(p.header); v != "" {
				b.WriteString(v)
			} else {
				b.WriteString("-")
			}
		}
	}
	return b.String()
}
