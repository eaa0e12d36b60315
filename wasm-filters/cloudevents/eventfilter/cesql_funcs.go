package eventfilter

import (
	"math"
	"strings"
	"unicode/utf8"
)

// function is a CESQL built-in function of one arity (or a variadic tail).
type function struct {
	name     string
	ret      Type
	params   []Type // fixed parameters; typeAny takes any type uncast
	variadic bool   // further String parameters allowed
	impl     func(pos int, args []Value) (Value, *CESQLError)
}

type callNode struct {
	pos  int
	fn   *function
	args []node
}

func (n *callNode) typ() Type { return n.fn.ret }

func (n *callNode) eval(attrs map[string]string) (Value, *CESQLError) {
	var buf [4]Value
	args := buf[:0]
	for i, a := range n.args {
		t := TypeString // the variadic tail of CONCAT and CONCAT_WS
		if i < len(n.fn.params) {
			t = n.fn.params[i]
		}
		v, err := evalAs(a, attrs, t, n.pos)
		if err != nil {
			return zeroValue(n.fn.ret), err
		}
		args = append(args, v)
	}
	return n.fn.impl(n.pos, args)
}

// lookupFunction resolves a built-in function by name (case-insensitive) and
// arity.
func lookupFunction(name cesqlToken, arity int) (*function, *CESQLError) {
	upper := strings.ToUpper(name.text)
	f := builtin(upper, arity)
	if f != nil {
		return f, nil
	}
	want := ""
	switch upper {
	case "LENGTH", "LOWER", "UPPER", "TRIM", "ABS", "INT", "BOOL", "STRING", "IS_BOOL", "IS_INT":
		want = "1 argument"
	case "LEFT", "RIGHT":
		want = "2 arguments"
	case "SUBSTRING":
		want = "2 or 3 arguments"
	case "CONCAT_WS":
		want = "at least 1 argument"
	default:
		return nil, evalErr(ErrMissingFunction, name.pos, "unknown function %s (built-ins: ABS, BOOL, CONCAT, CONCAT_WS, INT, IS_BOOL, IS_INT, LEFT, LENGTH, LOWER, RIGHT, STRING, SUBSTRING, TRIM, UPPER)", upper)
	}
	return nil, evalErr(ErrMissingFunction, name.pos, "function %s takes %s, got %d", upper, want, arity)
}

// missingFunctionNode is a call to no built-in function (an unknown name or a wrong number of
// arguments). It evaluates to a missing-function error, without evaluating its arguments, and
// Boolean false (sdk-go's value with that error).
type missingFunctionNode struct{ err *CESQLError }

func (n *missingFunctionNode) typ() Type { return TypeBoolean }

func (n *missingFunctionNode) eval(map[string]string) (Value, *CESQLError) {
	return BoolValue(false), n.err
}

// builtin returns the built-in function name/arity, or nil.
func builtin(name string, arity int) *function {
	str1 := []Type{TypeString}
	any1 := []Type{typeAny}
	switch {
	case name == "LENGTH" && arity == 1:
		return &function{name: name, ret: TypeInteger, params: str1, impl: fnLength}
	case name == "CONCAT":
		return &function{name: name, ret: TypeString, variadic: true, impl: fnConcat}
	case name == "CONCAT_WS" && arity >= 1:
		return &function{name: name, ret: TypeString, params: str1, variadic: true, impl: fnConcatWS}
	case name == "LOWER" && arity == 1:
		return &function{name: name, ret: TypeString, params: str1, impl: func(_ int, a []Value) (Value, *CESQLError) {
			return StringValue(strings.ToLower(a[0].s)), nil
		}}
	case name == "UPPER" && arity == 1:
		return &function{name: name, ret: TypeString, params: str1, impl: func(_ int, a []Value) (Value, *CESQLError) {
			return StringValue(strings.ToUpper(a[0].s)), nil
		}}
	case name == "TRIM" && arity == 1:
		return &function{name: name, ret: TypeString, params: str1, impl: func(_ int, a []Value) (Value, *CESQLError) {
			return StringValue(strings.TrimSpace(a[0].s)), nil
		}}
	case (name == "LEFT" || name == "RIGHT") && arity == 2:
		return &function{name: name, ret: TypeString, params: []Type{TypeString, TypeInteger}, impl: fnLeftRight(name == "LEFT")}
	case name == "SUBSTRING" && (arity == 2 || arity == 3):
		params := []Type{TypeString, TypeInteger, TypeInteger}[:arity]
		return &function{name: name, ret: TypeString, params: params, impl: fnSubstring}
	case name == "ABS" && arity == 1:
		return &function{name: name, ret: TypeInteger, params: []Type{TypeInteger}, impl: fnAbs}
	case name == "INT" && arity == 1:
		return &function{name: name, ret: TypeInteger, params: any1, impl: func(pos int, a []Value) (Value, *CESQLError) {
			return cast(a[0], TypeInteger, pos)
		}}
	case name == "BOOL" && arity == 1:
		return &function{name: name, ret: TypeBoolean, params: any1, impl: func(pos int, a []Value) (Value, *CESQLError) {
			return cast(a[0], TypeBoolean, pos)
		}}
	case name == "STRING" && arity == 1:
		return &function{name: name, ret: TypeString, params: any1, impl: func(pos int, a []Value) (Value, *CESQLError) {
			return cast(a[0], TypeString, pos)
		}}
	case name == "IS_INT" && arity == 1:
		return &function{name: name, ret: TypeBoolean, params: any1, impl: func(pos int, a []Value) (Value, *CESQLError) {
			_, err := cast(a[0], TypeInteger, pos)
			return BoolValue(err == nil), nil
		}}
	case name == "IS_BOOL" && arity == 1:
		return &function{name: name, ret: TypeBoolean, params: any1, impl: func(pos int, a []Value) (Value, *CESQLError) {
			_, err := cast(a[0], TypeBoolean, pos)
			return BoolValue(err == nil), nil
		}}
	}
	return nil
}

func fnLength(_ int, a []Value) (Value, *CESQLError) {
	return IntValue(int32(utf8.RuneCountInString(a[0].s))), nil
}

func fnConcat(_ int, a []Value) (Value, *CESQLError) {
	var b strings.Builder
	for _, v := range a {
		b.WriteString(v.s)
	}
	return StringValue(b.String()), nil
}

func fnConcatWS(_ int, a []Value) (Value, *CESQLError) {
	var b strings.Builder
	for i, v := range a[1:] {
		if i > 0 {
			b.WriteString(a[0].s)
		}
		b.WriteString(v.s)
	}
	return StringValue(b.String()), nil
}

func fnLeftRight(left bool) func(int, []Value) (Value, *CESQLError) {
	return func(pos int, a []Value) (Value, *CESQLError) {
		s, n := a[0].s, int(a[1].i)
		name := "RIGHT"
		if left {
			name = "LEFT"
		}
		if n < 0 {
			return a[0], evalErr(ErrFunctionEvaluation, pos, "%s: length %d is negative", name, n)
		}
		runes := utf8.RuneCountInString(s)
		if n >= runes {
			return a[0], nil
		}
		if left {
			return StringValue(s[:byteOffset(s, n)]), nil
		}
		return StringValue(s[byteOffset(s, runes-n):]), nil
	}
}

// byteOffset returns the byte offset of the n-th character (0-based) of s.
func byteOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

func fnSubstring(pos int, a []Value) (Value, *CESQLError) {
	s := a[0].s
	p := int(a[1].i)
	runes := utf8.RuneCountInString(s)
	if p > runes || p < -runes {
		return StringValue(""), evalErr(ErrFunctionEvaluation, pos,
			"SUBSTRING: position %d is outside a string of length %d", p, runes)
	}
	length := -1
	if len(a) == 3 {
		length = int(a[2].i)
		if length < 0 {
			return StringValue(""), evalErr(ErrFunctionEvaluation, pos, "SUBSTRING: length %d is negative", length)
		}
	}
	if p == 0 {
		return StringValue(""), nil
	}
	start := p - 1
	if p < 0 {
		start = runes + p
	}
	end := runes
	if length >= 0 && start+length < end {
		end = start + length
	}
	return StringValue(s[byteOffset(s, start):byteOffset(s, end)]), nil
}

func fnAbs(pos int, a []Value) (Value, *CESQLError) {
	v := a[0].i
	if v == math.MinInt32 {
		return IntValue(math.MaxInt32), evalErr(ErrMath, pos, "ABS(%d) overflows the 32-bit range", v)
	}
	if v < 0 {
		v = -v
	}
	return IntValue(v), nil
}
