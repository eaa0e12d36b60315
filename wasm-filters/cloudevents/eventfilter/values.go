package eventfilter

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// This file holds the syntax checks of the CloudEvents type system that the
// standard library does not do exactly: URI-reference and URI (RFC 3986),
// Timestamp (RFC 3339) and media types (RFC 2046, in HTTP's syntax). Each
// returns what is wrong, or "". They are strict where Go's url.Parse and
// time.Parse are lenient (a space in a URI) and lenient where those are strict
// (lower-case "t" and "z", and leap seconds, in a timestamp).

// checkURIReference checks a URI-reference (RFC 3986 section 4.1): a URI or a
// relative reference.
func checkURIReference(s string) string {
	_, msg := parseURIReference(s)
	return msg
}

// checkURI checks an absolute URI: a URI-reference with a scheme. A fragment
// is accepted (the CloudEvents URI type names RFC 3986 section 4.3, which has
// none, but schema URIs commonly carry one and the SDKs accept it).
func checkURI(s string) string {
	scheme, msg := parseURIReference(s)
	if msg != "" {
		return msg
	}
	if scheme == "" {
		return "it has no scheme"
	}
	return ""
}

// parseURIReference validates s against RFC 3986's URI-reference grammar and
// returns its scheme ("" for a relative reference).
func parseURIReference(s string) (scheme, msg string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Sprintf(`"%%" at byte %d does not start a percent-encoded octet (%%XX)`, i)
			}
			i += 2
			continue
		}
		if !isURIChar(c) {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return "", fmt.Sprintf("character %q at byte %d is not allowed in a URI (RFC 3986): percent-encode it", r, i)
		}
	}
	rest := s
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		if j := strings.IndexAny(rest[i+1:], "#[]"); j >= 0 {
			return "", fmt.Sprintf("%q is not allowed in the fragment", rest[i+1+j])
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		if j := strings.IndexAny(rest[i+1:], "[]"); j >= 0 {
			return "", fmt.Sprintf("%q is not allowed in the query", rest[i+1+j])
		}
		rest = rest[:i]
	}
	if i := strings.IndexAny(rest, ":/"); i >= 0 && rest[i] == ':' {
		scheme = rest[:i]
		if !validScheme(scheme) {
			if scheme == "" {
				return "", "it starts with \":\": the scheme is empty"
			}
			return "", fmt.Sprintf("%q is not a valid scheme (a letter, then letters, digits, '+', '-' or '.'); a relative path's first segment cannot contain ':'", scheme)
		}
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "//") {
		authority := rest[2:]
		rest = ""
		if j := strings.IndexByte(authority, '/'); j >= 0 {
			authority, rest = authority[:j], authority[j:]
		}
		if msg := checkAuthority(authority); msg != "" {
			return "", msg
		}
	}
	if j := strings.IndexAny(rest, "[]"); j >= 0 {
		return "", fmt.Sprintf("%q is not allowed in the path", rest[j])
	}
	return scheme, ""
}

// checkAuthority checks [ userinfo "@" ] host [ ":" port ].
func checkAuthority(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		userinfo := a[:i]
		if strings.ContainsAny(userinfo, "@[]") {
			return "the authority's user information contains '@', '[' or ']'"
		}
		a = a[i+1:]
	}
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "the IP literal in the authority has no closing ']'"
		}
		host, port = a[1:end], a[end+1:]
		if !validIPLiteral(host) {
			return fmt.Sprintf("[%s] is not an IPv6 address or IPvFuture literal", host)
		}
		if port != "" {
			if port[0] != ':' {
				return "unexpected characters after the IP literal in the authority"
			}
			port = port[1:]
		}
	} else {
		if i := strings.IndexByte(a, ':'); i >= 0 {
			host, port = a[:i], a[i+1:]
		}
		if strings.ContainsAny(host, "[]") {
			return "'[' and ']' are allowed in a host only around an IP literal"
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return fmt.Sprintf("port %q is not a number", port)
		}
	}
	return ""
}

// validIPLiteral reports whether s (between '[' and ']') is an IPv6 address
// without a zone, or an IPvFuture literal ("v" 1*HEXDIG "." 1*(unreserved /
// sub-delims / ":")).
func validIPLiteral(s string) bool {
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		hex, rest, ok := strings.Cut(s[1:], ".")
		if !ok || hex == "" || rest == "" {
			return false
		}
		for i := 0; i < len(hex); i++ {
			if !isHex(hex[i]) {
				return false
			}
		}
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if !isUnreserved(c) && !isSubDelim(c) && c != ':' {
				return false
			}
		}
		return true
	}
	addr, err := netip.ParseAddr(s)
	return err == nil && addr.Is6() && addr.Zone() == ""
}

func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isURIChar reports whether c may appear literally in a URI: unreserved,
// sub-delims or gen-delims ('%' is handled apart).
func isURIChar(c byte) bool {
	if isUnreserved(c) || isSubDelim(c) {
		return true
	}
	switch c {
	case ':', '/', '?', '#', '[', ']', '@':
		return true
	}
	return false
}

func isUnreserved(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

// isSubDelim and isURIChar switch rather than search a string: they run once
// per byte of every URI attribute, and a call per byte is what the proxy-wasm
// filter (compiled Go under a wasm runtime) spends most on.
func isSubDelim(c byte) bool {
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// checkTimestamp checks an RFC 3339 date-time (section 5.6):
// YYYY-MM-DD "T" hh:mm:ss [.fraction] ("Z" / +hh:mm / -hh:mm), where "T" and
// "Z" may be lower case (section 5.6, note) and the second may be 60 where a
// leap second can occur: at 23:59 UTC (section 5.7).
func checkTimestamp(s string) string {
	const short = "want YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)"
	if len(s) < len("2006-01-02T15:04:05Z") {
		return short
	}
	num := func(at, n int) (int, bool) {
		v := 0
		for i := at; i < at+n; i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	second, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || s[4] != '-' || s[7] != '-' ||
		(s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return short
	}
	switch {
	case month < 1 || month > 12:
		return fmt.Sprintf("month %02d is out of range", month)
	case day < 1 || day > daysIn(month, year):
		return fmt.Sprintf("day %02d is out of range for %04d-%02d", day, year, month)
	case hour > 23:
		return fmt.Sprintf("hour %02d is out of range", hour)
	case minute > 59:
		return fmt.Sprintf("minute %02d is out of range", minute)
	case second > 60:
		return fmt.Sprintf("second %02d is out of range", second)
	}
	rest := s[19:]
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 {
			return "a fraction of a second needs at least one digit after '.'"
		}
		rest = rest[n:]
	}
	offset := 0 // minutes east of UTC
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(len(s)-5, 2)
		om, ok2 := num(len(s)-2, 2)
		if !ok1 || !ok2 {
			return short
		}
		if oh > 23 || om > 59 {
			return fmt.Sprintf("offset %s is out of range", rest)
		}
		offset = oh*60 + om
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return "the time offset must be Z or ±hh:mm; " + short
	}
	if second == 60 {
		utc := ((hour*60+minute-offset)%1440 + 1440) % 1440
		if utc != 23*60+59 {
			return "second 60 (a leap second) can only occur at 23:59 UTC"
		}
	}
	return ""
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// checkMediaType checks a media type as HTTP writes it (RFC 7231 section
// 3.1.1.1, the syntax of RFC 2046): type "/" subtype, then ";"-separated
// parameters name=value, the value a token or a quoted string. Like Go's
// mime.ParseMediaType (which the CloudEvents SDK uses) it tolerates white
// space around "=" and a trailing ";".
func checkMediaType(v string) string {
	i := 0
	tok := func() string {
		start := i
		for i < len(v) && isTokenChar(v[i]) {
			i++
		}
		return v[start:i]
	}
	ows := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	if tok() == "" {
		return `want "type/subtype": the type is not a token`
	}
	if i == len(v) || v[i] != '/' {
		return `want "type/subtype"`
	}
	i++
	if tok() == "" {
		return `want "type/subtype": the subtype is not a token`
	}
	for {
		ows()
		if i == len(v) {
			return ""
		}
		if v[i] != ';' {
			return fmt.Sprintf("unexpected %q after the media type: parameters are separated by ';'", v[i])
		}
		i++
		ows()
		if i == len(v) {
			return "" // a trailing ";"
		}
		name := tok()
		if name == "" {
			return "a parameter name is not a token"
		}
		ows()
		if i == len(v) || v[i] != '=' {
			return fmt.Sprintf("parameter %q has no value", name)
		}
		i++
		ows()
		if i < len(v) && v[i] == '"' {
			i++
			closed := false
			for i < len(v) {
				c := v[i]
				i++
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' {
					if i == len(v) {
						break
					}
					i++
				}
			}
			if !closed {
				return fmt.Sprintf("parameter %q: the quoted value is not closed", name)
			}
		} else if tok() == "" {
			return fmt.Sprintf("parameter %q: the value is neither a token nor a quoted string", name)
		}
	}
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=':
		return false
	}
	return true
}

// mediaType returns the lower-cased "type/subtype" of a Content-Type value,
// without parameters.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// IsJSONMediaType reports whether a datacontenttype declares JSON-formatted
// data, as the JSON event format (section 3.1.1) defines it: its media type,
// without parameters, is "*/json" or "*/*+json". An absent datacontenttype
// ("") counts as application/json.
func IsJSONMediaType(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt := mediaType(contentType)
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}
