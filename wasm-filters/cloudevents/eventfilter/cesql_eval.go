package eventfilter

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type is a CESQL value type.
type Type uint8

// CESQL types. URI, URI-reference and Timestamp attributes are Strings.
const (
	TypeBoolean Type = iota + 1
	TypeInteger
	TypeString
	typeAny Type = 0 // function parameters that take any type
)

// String returns "Boolean", "Integer" or "String".
func (t Type) String() string {
	switch t {
	case TypeBoolean:
		return "Boolean"
	case TypeInteger:
		return "Integer"
	case TypeString:
		return "String"
	}
	return "Any"
}

// Value is a CESQL value: a Boolean, a 32-bit Integer or a String.
type Value struct {
	t Type
	i int32 // Integer, or Boolean as 0/1
	s string
}

// BoolValue returns a Boolean value.
func BoolValue(b bool) Value {
	if b {
		return Value{t: TypeBoolean, i: 1}
	}
	return Value{t: TypeBoolean}
}

// IntValue returns an Integer value.
func IntValue(i int32) Value { return Value{t: TypeInteger, i: i} }

// StringValue returns a String value.
func StringValue(s string) Value { return Value{t: TypeString, s: s} }

// Type returns the value's type.
func (v Value) Type() Type { return v.t }

// Bool returns a Boolean's value (false for other types).
func (v Value) Bool() bool { return v.t == TypeBoolean && v.i != 0 }

// Int returns an Integer's value (0 for other types).
func (v Value) Int() int32 {
	if v.t != TypeInteger {
		return 0
	}
	return v.i
}

// String returns the value cast to String, as CESQL's STRING() does.
func (v Value) String() string {
	switch v.t {
	case TypeBoolean:
		if v.i != 0 {
			return "true"
		}
		return "false"
	case TypeInteger:
		return strconv.FormatInt(int64(v.i), 10)
	}
	return v.s
}

func zeroValue(t Type) Value {
	if t == typeAny {
		t = TypeBoolean // the specification's choice when a type is unknown
	}
	return Value{t: t}
}

// ErrorKind classifies CESQL errors, after the error types of the
// specification (section 3.3).
type ErrorKind uint8

// CESQL error kinds.
const (
	ErrParse ErrorKind = iota + 1
	ErrMath
	ErrCast
	ErrMissingAttribute
	ErrMissingFunction
	ErrFunctionEvaluation
)

// String returns the kind's name as the specification spells it.
func (k ErrorKind) String() string {
	switch k {
	case ErrParse:
		return "parse"
	case ErrMath:
		return "math"
	case ErrCast:
		return "cast"
	case ErrMissingAttribute:
		return "missing attribute"
	case ErrMissingFunction:
		return "missing function"
	case ErrFunctionEvaluation:
		return "function evaluation"
	}
	return "generic"
}

// CESQLError is an error found while parsing or evaluating a CESQL
// expression. Pos is the byte offset in the expression of the token where the
// problem is (column Pos+1).
type CESQLError struct {
	Kind ErrorKind
	Pos  int
	Msg  string
}

// Error implements error.
func (e *CESQLError) Error() string {
	if e.Kind == ErrParse {
		return fmt.Sprintf("column %d: %s", e.Pos+1, e.Msg)
	}
	return fmt.Sprintf("%s error at column %d: %s", e.Kind, e.Pos+1, e.Msg)
}

func parseErr(pos int, format string, args ...any) *CESQLError {
	return &CESQLError{Kind: ErrParse, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func evalErr(kind ErrorKind, pos int, format string, args ...any) *CESQLError {
	return &CESQLError{Kind: kind, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// Expr is a parsed CESQL expression, safe for concurrent use.
type Expr struct {
	root node
	src  string
}

// String returns the expression's source text.
func (e Expr) String() string { return e.src }

// Type returns the type the expression evaluates to.
func (e Expr) Type() Type {
	if e.root == nil {
		return typeAny
	}
	return e.root.typ()
}

// Evaluate evaluates the expression against an event, in the specification's
// fail-fast mode: at the first error, evaluation stops and returns the error
// with the zero value of the failing subexpression's type (or the value the
// specification defines, e.g. LEFT('abc', -1) is 'abc'). AND and OR
// short-circuit. Attributes are Strings; a missing one is an
// ErrMissingAttribute error.
func (e Expr) Evaluate(ev Event) (Value, error) {
	if e.root == nil {
		return zeroValue(TypeBoolean), evalErr(ErrParse, 0, "empty expression")
	}
	v, err := e.root.eval(ev.Attributes)
	if err != nil {
		return v, err
	}
	return v, nil
}

// Match reports whether the event passes the expression used as a filter: it
// must evaluate to Boolean true without any error (CESQL section 1.2).
func (e Expr) Match(ev Event) bool {
	if e.root == nil {
		return false
	}
	v, err := e.root.eval(ev.Attributes)
	return err == nil && v.t == TypeBoolean && v.i != 0
}

// node is a node of the expression tree.
type node interface {
	eval(attrs map[string]string) (Value, *CESQLError)
	typ() Type
}

func cast(v Value, t Type, pos int) (Value, *CESQLError) {
	if v.t == t || t == typeAny {
		return v, nil
	}
	switch t {
	case TypeString:
		return StringValue(v.String()), nil
	case TypeInteger:
		switch v.t {
		case TypeBoolean:
			return IntValue(v.i), nil
		case TypeString:
			n, err := strconv.ParseInt(v.s, 10, 32)
			if err != nil {
				return IntValue(0), evalErr(ErrCast, pos, "cannot cast String %q to Integer", v.s)
			}
			return IntValue(int32(n)), nil
		}
	case TypeBoolean:
		switch v.t {
		case TypeInteger:
			return BoolValue(v.i != 0), nil
		case TypeString:
			switch strings.ToLower(v.s) {
			case "true":
				return BoolValue(true), nil
			case "false":
				return BoolValue(false), nil
			}
			return BoolValue(false), evalErr(ErrCast, pos, "cannot cast String %q to Boolean", v.s)
		}
	}
	return zeroValue(t), evalErr(ErrCast, pos, "cannot cast %s to %s", v.t, t)
}

// evalAs evaluates n and casts the result to t.
func evalAs(n node, attrs map[string]string, t Type, pos int) (Value, *CESQLError) {
	v, err := n.eval(attrs)
	if err != nil {
		return zeroValue(t), err
	}
	return cast(v, t, pos)
}

type literalNode struct{ v Value }

func (n *literalNode) eval(map[string]string) (Value, *CESQLError) { return n.v, nil }
func (n *literalNode) typ() Type                                   { return n.v.t }

type identNode struct {
	pos  int
	name string
}

func (n *identNode) eval(attrs map[string]string) (Value, *CESQLError) {
	v, ok := attrs[n.name]
	if !ok {
		return zeroValue(TypeString), evalErr(ErrMissingAttribute, n.pos, "attribute %q is not in the event", n.name)
	}
	return StringValue(v), nil
}
func (n *identNode) typ() Type { return TypeString }

type existsNode struct{ name string }

func (n *existsNode) eval(attrs map[string]string) (Value, *CESQLError) {
	_, ok := attrs[n.name]
	return BoolValue(ok), nil
}
func (n *existsNode) typ() Type { return TypeBoolean }

type notNode struct {
	pos   int
	child node
}

func (n *notNode) eval(attrs map[string]string) (Value, *CESQLError) {
	v, err := evalAs(n.child, attrs, TypeBoolean, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	return BoolValue(v.i == 0), nil
}
func (n *notNode) typ() Type { return TypeBoolean }

type negNode struct {
	pos   int
	child node
}

func (n *negNode) eval(attrs map[string]string) (Value, *CESQLError) {
	v, err := evalAs(n.child, attrs, TypeInteger, n.pos)
	if err != nil {
		return IntValue(0), err
	}
	if v.i == math.MinInt32 {
		return IntValue(0), evalErr(ErrMath, n.pos, "integer overflow: -(%d)", v.i)
	}
	return IntValue(-v.i), nil
}
func (n *negNode) typ() Type { return TypeInteger }

type logicNode struct {
	pos         int
	op          cesqlTokKind // tokAnd, tokOr, tokXor
	left, right node
}

func (n *logicNode) eval(attrs map[string]string) (Value, *CESQLError) {
	l, err := evalAs(n.left, attrs, TypeBoolean, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	if n.op == tokAnd && l.i == 0 {
		return BoolValue(false), nil
	}
	if n.op == tokOr && l.i != 0 {
		return BoolValue(true), nil
	}
	r, err := evalAs(n.right, attrs, TypeBoolean, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	if n.op == tokXor {
		return BoolValue((l.i != 0) != (r.i != 0)), nil
	}
	return BoolValue(r.i != 0), nil // AND with l true, OR with l false
}
func (n *logicNode) typ() Type { return TypeBoolean }

// equalNode is = (or != and <> when negate): ambiguous between Boolean,
// Integer and String, so the left operand is cast to the right operand's type
// (CESQL section 3.7).
type equalNode struct {
	pos         int
	negate      bool
	left, right node
}

func (n *equalNode) eval(attrs map[string]string) (Value, *CESQLError) {
	l, err := n.left.eval(attrs)
	if err != nil {
		return BoolValue(false), err
	}
	r, err := n.right.eval(attrs)
	if err != nil {
		return BoolValue(false), err
	}
	l, err = cast(l, r.t, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	return BoolValue(l.equal(r) != n.negate), nil
}
func (n *equalNode) typ() Type { return TypeBoolean }

func (v Value) equal(o Value) bool {
	if v.t != o.t {
		return false
	}
	if v.t == TypeString {
		return v.s == o.s
	}
	return v.i == o.i
}

// compareNode is < <= > >=, defined on Integers only.
type compareNode struct {
	pos         int
	op          cesqlTokKind
	left, right node
}

func (n *compareNode) eval(attrs map[string]string) (Value, *CESQLError) {
	l, err := evalAs(n.left, attrs, TypeInteger, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	r, err := evalAs(n.right, attrs, TypeInteger, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	var b bool
	switch n.op {
	case tokLt:
		b = l.i < r.i
	case tokLe:
		b = l.i <= r.i
	case tokGt:
		b = l.i > r.i
	default:
		b = l.i >= r.i
	}
	return BoolValue(b), nil
}
func (n *compareNode) typ() Type { return TypeBoolean }

type mathNode struct {
	pos         int
	op          cesqlTokKind
	left, right node
}

func (n *mathNode) eval(attrs map[string]string) (Value, *CESQLError) {
	l, err := evalAs(n.left, attrs, TypeInteger, n.pos)
	if err != nil {
		return IntValue(0), err
	}
	r, err := evalAs(n.right, attrs, TypeInteger, n.pos)
	if err != nil {
		return IntValue(0), err
	}
	a, b := int64(l.i), int64(r.i)
	var res int64
	switch n.op {
	case tokPlus:
		res = a + b
	case tokMinus:
		res = a - b
	case tokStar:
		res = a * b
	case tokSlash, tokPct:
		if b == 0 {
			return IntValue(0), evalErr(ErrMath, n.pos, "division by zero")
		}
		if n.op == tokSlash {
			res = a / b // Go truncates toward zero, as CESQL requires
		} else {
			res = a % b // the sign of the dividend, as CESQL requires
		}
	}
	if res < math.MinInt32 || res > math.MaxInt32 {
		return IntValue(0), evalErr(ErrMath, n.pos, "integer overflow: result %d is out of the 32-bit range", res)
	}
	return IntValue(int32(res)), nil
}
func (n *mathNode) typ() Type { return TypeInteger }

type likeNode struct {
	pos     int
	negate  bool
	child   node
	pattern []likeTok
}

func (n *likeNode) eval(attrs map[string]string) (Value, *CESQLError) {
	v, err := evalAs(n.child, attrs, TypeString, n.pos)
	if err != nil {
		return BoolValue(false), err
	}
	return BoolValue(likeMatch(n.pattern, v.s) != n.negate), nil
}
func (n *likeNode) typ() Type { return TypeBoolean }

// inNode is x IN (y1, ...): each element is cast to x's type and compared
// with =. Like the reference implementation, it stops at the first equal
// element; an element that fails before that is an error.
type inNode struct {
	pos    int
	negate bool
	child  node
	set    []node
}

func (n *inNode) eval(attrs map[string]string) (Value, *CESQLError) {
	x, err := n.child.eval(attrs)
	if err != nil {
		return BoolValue(false), err
	}
	for _, e := range n.set {
		y, err := evalAs(e, attrs, x.t, n.pos)
		if err != nil {
			return BoolValue(false), err
		}
		if x.equal(y) {
			return BoolValue(!n.negate), nil
		}
	}
	return BoolValue(n.negate), nil
}
func (n *inNode) typ() Type { return TypeBoolean }

// likeTok is one element of a compiled LIKE pattern.
type likeTok struct {
	kind uint8 // likeLit, likeOne, likeMany
	r    rune
}

const (
	likeLit  = iota // the character r
	likeOne         // _ : exactly one character
	likeMany        // % : zero or more characters
)

// compileLike compiles a LIKE pattern: % and _ are wildcards, \% and \_ match
// them literally, and any other backslash is an ordinary character.
func compileLike(p string) []likeTok {
	toks := make([]likeTok, 0, len(p))
	for i := 0; i < len(p); {
		if p[i] == '\\' && i+1 < len(p) && (p[i+1] == '%' || p[i+1] == '_') {
			toks = append(toks, likeTok{kind: likeLit, r: rune(p[i+1])})
			i += 2
			continue
		}
		r, size := utf8.DecodeRuneInString(p[i:])
		switch r {
		case '%':
			if len(toks) == 0 || toks[len(toks)-1].kind != likeMany {
				toks = append(toks, likeTok{kind: likeMany})
			}
		case '_':
			toks = append(toks, likeTok{kind: likeOne})
		default:
			toks = append(toks, likeTok{kind: likeLit, r: r})
		}
		i += size
	}
	return toks
}

// likeMatch matches s against a compiled pattern, character by character
// (case-sensitive), backtracking to the last % on a mismatch.
func likeMatch(pat []likeTok, s string) bool {
	pi, si := 0, 0
	starPi, starSi := -1, 0
	for si < len(s) {
		if pi < len(pat) {
			switch pat[pi].kind {
			case likeMany:
				starPi, starSi = pi, si
				pi++
				continue
			case likeOne:
				_, size := utf8.DecodeRuneInString(s[si:])
				si += size
				pi++
				continue
			default:
				r, size := utf8.DecodeRuneInString(s[si:])
				if r == pat[pi].r {
					si += size
					pi++
					continue
				}
			}
		}
		if starPi < 0 {
			return false
		}
		_, size := utf8.DecodeRuneInString(s[starSi:])
		starSi += size
		si = starSi
		pi = starPi + 1
	}
	for pi < len(pat) && pat[pi].kind == likeMany {
		pi++
	}
	return pi == len(pat)
}
