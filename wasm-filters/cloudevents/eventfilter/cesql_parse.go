package eventfilter

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds the CESQL (CloudEvents SQL Expression Language v1.0.0)
// lexer and parser.
//
// Grammar decisions, where the specification's text and its reference ANTLR
// grammar (the one cloudevents/sdk-go, and so Knative, uses) leave room:
//
//   - Precedence, highest first: function invocation; unary NOT and unary -;
//     LIKE; EXISTS; IN; * / %; + -; = != <> < <= > >=; AND OR XOR. As in the
//     reference grammar, NOT binds tighter than everything but function calls:
//     "NOT a = b" is "(NOT a) = b"; write "NOT (a = b)" or "a != b".
//   - AND, OR and XOR share one precedence level and group to the right, as in
//     the reference grammar: "a AND b OR c" is "a AND (b OR c)". This differs
//     from SQL; Skiff follows Knative so that a Trigger routes the same events.
//     Use parentheses when mixing them.
//   - Keywords and function names are case-insensitive. Attribute identifiers
//     are lower-cased (the reference implementation does the same), so TYPE
//     and type both name the type attribute.
//   - In string literals, \' (in '...') and \" (in "...") stand for the
//     quote; any other backslash is kept as is, so that LIKE patterns can
//     escape % and _ with \% and \_.
//   - Integer literals are 32-bit; "-2147483648" is accepted. '+' and '-'
//     directly before a literal are its sign; 4-1 is a subtraction.
//   - Unknown functions and wrong argument counts are reported when parsing,
//     not when evaluating: a filter that could never match is an error.

// cesqlTokKind is the kind of a lexical token.
type cesqlTokKind uint8

const (
	tokEOF cesqlTokKind = iota
	tokWord
	tokInt
	tokString
	tokLParen
	tokRParen
	tokComma
	tokEq    // =
	tokNe    // != or <>
	tokLt    // <
	tokLe    // <=
	tokGt    // >
	tokGe    // >=
	tokPlus  // +
	tokMinus // -
	tokStar  // *
	tokSlash // /
	tokPct   // %
	tokAnd
	tokOr
	tokXor
	tokNot
	tokLike
	tokExists
	tokIn
	tokTrue
	tokFalse
)

type cesqlToken struct {
	kind cesqlTokKind
	pos  int    // byte offset in the source
	text string // source text; the decoded value for strings
}

func (t cesqlToken) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	case tokInt:
		return "integer " + t.text
	case tokWord:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("%q", strings.ToUpper(t.text))
}

func lexCESQL(src string) ([]cesqlToken, error) {
	toks := make([]cesqlToken, 0, 16)
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
			continue
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			word := src[i:j]
			toks = append(toks, cesqlToken{kind: wordKind(word), pos: i, text: word})
			i = j
			continue
		case c == '\'' || c == '"':
			s, n, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, cesqlToken{kind: tokString, pos: i, text: s})
			i += n
			continue
		}
		kind, n := tokEOF, 1
		switch c {
		case '(':
			kind = tokLParen
		case ')':
			kind = tokRParen
		case ',':
			kind = tokComma
		case '=':
			kind = tokEq
		case '+':
			kind = tokPlus
		case '-':
			kind = tokMinus
		case '*':
			kind = tokStar
		case '/':
			kind = tokSlash
		case '%':
			kind = tokPct
		case '!':
			if i+1 < len(src) && src[i+1] == '=' {
				kind, n = tokNe, 2
			}
		case '<':
			kind = tokLt
			if i+1 < len(src) {
				switch src[i+1] {
				case '=':
					kind, n = tokLe, 2
				case '>':
					kind, n = tokNe, 2
				}
			}
		case '>':
			kind = tokGt
			if i+1 < len(src) && src[i+1] == '=' {
				kind, n = tokGe, 2
			}
		}
		if kind == tokEOF {
			return nil, parseErr(i, "unexpected character %q", rune(c))
		}
		toks = append(toks, cesqlToken{kind: kind, pos: i, text: src[i : i+n]})
		i += n
	}
	return append(toks, cesqlToken{kind: tokEOF, pos: len(src)}), nil
}

func isWordByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '_'
}

func wordKind(w string) cesqlTokKind {
	allDigits := true
	for i := 0; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			allDigits = false
			break
		}
	}
	if allDigits {
		return tokInt
	}
	switch strings.ToUpper(w) {
	case "AND":
		return tokAnd
	case "OR":
		return tokOr
	case "XOR":
		return tokXor
	case "NOT":
		return tokNot
	case "LIKE":
		return tokLike
	case "EXISTS":
		return tokExists
	case "IN":
		return tokIn
	case "TRUE":
		return tokTrue
	case "FALSE":
		return tokFalse
	}
	return tokWord
}

// lexString reads a string literal starting at src[start] (a quote) and
// returns its value and its length in the source.
func lexString(src string, start int) (string, int, error) {
	q := src[start]
	var b strings.Builder
	for i := start + 1; i < len(src); i++ {
		c := src[i]
		switch {
		case c == q:
			return b.String(), i + 1 - start, nil
		case c == '\\' && i+1 < len(src) && src[i+1] == q:
			b.WriteByte(q)
			i++
		case c == '\\' && i+1 < len(src):
			// Kept as is, with the next character: LIKE escapes (\% \_)
			// reach the pattern, and \\ does not end up escaping a quote.
			b.WriteByte(c)
			b.WriteByte(src[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, parseErr(start, "unterminated string literal")
}

// Binding powers of infix and postfix operators (higher binds tighter).
const (
	bpLogic    = 10 // AND OR XOR, right-associative
	bpCompare  = 20
	bpAdditive = 30
	bpMultiply = 40
	bpIn       = 50
	bpLike     = 70
	bpUnary    = 80
)

type cesqlParser struct {
	toks []cesqlToken
	i    int
}

func (p *cesqlParser) peek() cesqlToken { return p.toks[p.i] }

func (p *cesqlParser) next() cesqlToken {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *cesqlParser) expect(kind cesqlTokKind, what string) (cesqlToken, error) {
	t := p.next()
	if t.kind != kind {
		return t, parseErr(t.pos, "expected %s, found %s", what, t.describe())
	}
	return t, nil
}

// ParseCESQL parses a CESQL v1 expression. Errors are *CESQLError of kind
// ErrParse and carry the byte offset of the problem.
func ParseCESQL(src string) (Expr, error) {
	toks, err := lexCESQL(src)
	if err != nil {
		return Expr{}, err
	}
	p := &cesqlParser{toks: toks}
	if p.peek().kind == tokEOF {
		return Expr{}, parseErr(0, "empty expression")
	}
	root, err := p.parseExpr(0)
	if err != nil {
		return Expr{}, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return Expr{}, parseErr(t.pos, "unexpected %s after a complete expression", t.describe())
	}
	return Expr{root: root, src: src}, nil
}

func (p *cesqlParser) parseExpr(minBP int) (node, error) {
	left, err := p.parsePrefix()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch t.kind {
		case tokAnd, tokOr, tokXor:
			if bpLogic <= minBP {
				return left, nil
			}
			p.next()
			right, err := p.parseExpr(bpLogic - 1)
			if err != nil {
				return nil, err
			}
			left = &logicNode{pos: t.pos, op: t.kind, left: left, right: right}
		case tokEq, tokNe, tokLt, tokLe, tokGt, tokGe:
			if bpCompare <= minBP {
				return left, nil
			}
			p.next()
			right, err := p.parseExpr(bpCompare)
			if err != nil {
				return nil, err
			}
			if t.kind == tokEq || t.kind == tokNe {
				left = &equalNode{pos: t.pos, negate: t.kind == tokNe, left: left, right: right}
			} else {
				left = &compareNode{pos: t.pos, op: t.kind, left: left, right: right}
			}
		case tokPlus, tokMinus, tokStar, tokSlash, tokPct:
			bp := bpAdditive
			if t.kind == tokStar || t.kind == tokSlash || t.kind == tokPct {
				bp = bpMultiply
			}
			if bp <= minBP {
				return left, nil
			}
			p.next()
			right, err := p.parseExpr(bp)
			if err != nil {
				return nil, err
			}
			left = &mathNode{pos: t.pos, op: t.kind, left: left, right: right}
		case tokNot, tokLike, tokIn:
			negate := t.kind == tokNot
			opTok := t
			if negate {
				opTok = p.toks[p.i+1]
				if opTok.kind != tokLike && opTok.kind != tokIn {
					return nil, parseErr(opTok.pos, "expected LIKE or IN after NOT, found %s", opTok.describe())
				}
			}
			bp := bpIn
			if opTok.kind == tokLike {
				bp = bpLike
			}
			if bp <= minBP {
				return left, nil
			}
			p.next()
			if negate {
				p.next()
			}
			if opTok.kind == tokLike {
				pat, err := p.expect(tokString, "a string literal pattern after LIKE")
				if err != nil {
					return nil, err
				}
				left = &likeNode{pos: opTok.pos, negate: negate, child: left, pattern: compileLike(pat.text)}
			} else {
				set, err := p.parseSet()
				if err != nil {
					return nil, err
				}
				left = &inNode{pos: opTok.pos, negate: negate, child: left, set: set}
			}
		default:
			return left, nil
		}
	}
}

func (p *cesqlParser) parseSet() ([]node, error) {
	if _, err := p.expect(tokLParen, "'(' to start the IN set"); err != nil {
		return nil, err
	}
	var set []node
	for {
		e, err := p.parseExpr(0)
		if err != nil {
			return nil, err
		}
		set = append(set, e)
		t := p.next()
		switch t.kind {
		case tokComma:
			continue
		case tokRParen:
			return set, nil
		}
		return nil, parseErr(t.pos, "expected ',' or ')' in the IN set, found %s", t.describe())
	}
}

func (p *cesqlParser) parsePrefix() (node, error) {
	t := p.next()
	switch t.kind {
	case tokNot:
		child, err := p.parseExpr(bpUnary)
		if err != nil {
			return nil, err
		}
		return &notNode{pos: t.pos, child: child}, nil
	case tokMinus, tokPlus:
		if n := p.peek(); n.kind == tokInt {
			p.next()
			return intLiteral(n, t.kind == tokMinus)
		}
		if t.kind == tokPlus {
			return nil, parseErr(t.pos, "unexpected '+': unary plus only applies to an integer literal")
		}
		child, err := p.parseExpr(bpUnary)
		if err != nil {
			return nil, err
		}
		return &negNode{pos: t.pos, child: child}, nil
	case tokInt:
		return intLiteral(t, false)
	case tokString:
		return &literalNode{v: StringValue(t.text)}, nil
	case tokTrue, tokFalse:
		return &literalNode{v: BoolValue(t.kind == tokTrue)}, nil
	case tokExists:
		id, err := p.expect(tokWord, "an attribute name after EXISTS")
		if err != nil {
			return nil, err
		}
		name, err := identifierName(id)
		if err != nil {
			return nil, err
		}
		return &existsNode{name: name}, nil
	case tokLParen:
		e, err := p.parseExpr(0)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return e, nil
	case tokWord:
		if p.peek().kind == tokLParen {
			return p.parseCall(t)
		}
		name, err := identifierName(t)
		if err != nil {
			return nil, err
		}
		return &identNode{pos: t.pos, name: name}, nil
	}
	return nil, parseErr(t.pos, "unexpected %s: expected a value, an attribute, a function call, NOT, -, EXISTS or '('", t.describe())
}

func (p *cesqlParser) parseCall(name cesqlToken) (node, error) {
	p.next() // '('
	var args []node
	if p.peek().kind == tokRParen {
		p.next()
	} else {
		for {
			a, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			t := p.next()
			if t.kind == tokComma {
				continue
			}
			if t.kind == tokRParen {
				break
			}
			return nil, parseErr(t.pos, "expected ',' or ')' in the arguments of %s, found %s", strings.ToUpper(name.text), t.describe())
		}
	}
	fn, err := lookupFunction(name, len(args))
	if err != nil {
		// As CloudEvents' sdk-go (Knative's parser) has it, a call to no built-in parses and
		// fails when evaluated: Knative accepts such a Trigger, which then passes no event.
		return &missingFunctionNode{err: err}, nil
	}
	return &callNode{pos: name.pos, fn: fn, args: args}, nil
}

// identifierName validates an attribute identifier and lower-cases it.
func identifierName(t cesqlToken) (string, error) {
	for i := 0; i < len(t.text); i++ {
		if t.text[i] == '_' {
			return "", parseErr(t.pos, "%q is not an attribute name: attribute names consist of letters and digits only", t.text)
		}
	}
	return strings.ToLower(t.text), nil
}

func intLiteral(t cesqlToken, negative bool) (node, error) {
	n, err := strconv.ParseInt(t.text, 10, 64)
	limit := int64(1<<31 - 1)
	if negative {
		limit++
	}
	if err != nil || n > limit {
		sign := ""
		if negative {
			sign = "-"
		}
		return nil, parseErr(t.pos, "integer literal %s%s is out of the 32-bit range", sign, t.text)
	}
	if negative {
		n = -n
	}
	return &literalNode{v: IntValue(int32(n))}, nil
}
