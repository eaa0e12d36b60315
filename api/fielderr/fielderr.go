// Package fielderr is the error type Skiff's validation returns: a tree of diagnostics, each
// with a message and the field paths it is about, written and merged exactly as Knative's
// webhook writes them (knative.dev/pkg/apis.FieldError), so that a refused document names the
// same fields with the same words as Knative would:
//
//	expected exactly one, got neither: spec.template.spec.volumes[0].configMap, spec.template.spec.volumes[0].projected, ...
//
// Validation builds errors bottom-up, with paths relative to the value it checks, and callers
// prefix them with ViaField, ViaIndex and ViaKey on the way up.
package fielderr

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Current is the path to give when an error is about the value being validated itself.
const Current = ""

// Level is how severe a diagnostic is: an error refuses the object, a warning is reported
// with it (as a Kubernetes admission warning).
type Level int

// The levels of a diagnostic.
const (
	ErrorLevel Level = iota
	WarningLevel
)

// String names the level.
func (l Level) String() string {
	switch l {
	case ErrorLevel:
		return "Error"
	case WarningLevel:
		return "Warning"
	}
	return fmt.Sprintf("<UNKNOWN: %d>", int(l))
}

// Error is one diagnostic (Message about Paths, optional Details) plus any number of nested
// ones. The nil *Error means "no problem"; every method accepts it. Methods never change
// their receiver.
type Error struct {
	// Message says what is wrong.
	Message string
	// Paths are the fields it is about, relative to the value validated.
	Paths []string
	// Level is ErrorLevel unless set.
	Level Level
	// Details is an optional longer explanation.
	Details string

	nested []Error
}

var _ error = (*Error)(nil)

func (e *Error) empty() bool {
	return e == nil || e.Message == "" && e.Details == "" && len(e.Paths) == 0 && len(e.nested) == 0
}

func (e *Error) clone() *Error {
	c := &Error{Message: e.Message, Paths: slices.Clone(e.Paths), Level: e.Level, Details: e.Details}
	for _, n := range e.nested {
		c.nested = append(c.nested, *n.clone())
	}
	return c
}

// Also returns e together with errs (nil ones ignored); nil when there is nothing at all.
func (e *Error) Also(errs ...*Error) *Error {
	if len(errs) == 0 || len(errs) == 1 && errs[0].empty() {
		return e
	}
	out := &Error{}
	if !e.empty() {
		out = e.clone()
	}
	for _, x := range errs {
		if !x.empty() {
			out.nested = append(out.nested, *x)
		}
	}
	if out.empty() {
		return nil
	}
	return out
}

// ViaField prefixes every path with prefix (outermost first), as when the value validated
// was reached through those fields.
func (e *Error) ViaField(prefix ...string) *Error {
	if e == nil {
		return nil
	}
	out := &Error{Message: e.Message, Level: e.Level, Details: e.Details, Paths: make([]string, 0, len(e.Paths))}
	for _, p := range e.Paths {
		out.Paths = append(out.Paths, flatten(append(slices.Clone(prefix), p)))
	}
	for _, n := range e.nested {
		out = out.Also(n.ViaField(prefix...))
	}
	return out
}

// ViaIndex prefixes every path with [i]; the next ViaField joins it without a dot.
func (e *Error) ViaIndex(i int) *Error { return e.ViaField(fmt.Sprintf("[%d]", i)) }

// ViaKey prefixes every path with [key], for map entries.
func (e *Error) ViaKey(key string) *Error { return e.ViaField("[" + key + "]") }

// ViaFieldIndex is ViaIndex(i) then ViaField(field): field[i].
func (e *Error) ViaFieldIndex(field string, i int) *Error { return e.ViaIndex(i).ViaField(field) }

// ViaFieldKey is ViaKey(key) then ViaField(field): field[key].
func (e *Error) ViaFieldKey(field, key string) *Error { return e.ViaKey(key).ViaField(field) }

// At returns e with every diagnostic at level l.
func (e *Error) At(l Level) *Error {
	if e == nil {
		return nil
	}
	out := &Error{Message: e.Message, Level: l, Details: e.Details, Paths: e.Paths}
	for _, n := range e.nested {
		out = out.Also(n.At(l))
	}
	return out
}

// Filter keeps only the diagnostics at level l; nil when there are none.
func (e *Error) Filter(l Level) *Error {
	if e == nil {
		return nil
	}
	var out *Error
	if e.Level == l {
		out = &Error{Message: e.Message, Level: e.Level, Details: e.Details, Paths: e.Paths}
	}
	for _, n := range e.nested {
		out = out.Also(n.Filter(l))
	}
	if out.empty() {
		return nil
	}
	return out
}

// leaves lists every diagnostic that carries a message, depth first.
func (e *Error) leaves() []*Error {
	if e == nil {
		return nil
	}
	var out []*Error
	if e.Message != "" {
		out = append(out, &Error{Message: e.Message, Level: e.Level, Paths: slices.Clone(e.Paths), Details: e.Details})
	}
	for i := range e.nested {
		out = append(out, e.nested[i].leaves()...)
	}
	return out
}

// Flatten returns the diagnostics as Knative reports them: those with the same level,
// message and details merged into one naming all their paths, paths sorted, and the list
// sorted by message, then details, then level.
func (e *Error) Flatten() []*Error {
	byKey := map[string]*Error{}
	var order []*Error
	for _, l := range e.leaves() {
		k := fmt.Sprintf("%s-%s-%s", l.Level, l.Message, l.Details)
		if have, ok := byKey[k]; ok {
			for _, p := range l.Paths {
				if !slices.Contains(have.Paths, p) {
					have.Paths = append(have.Paths, p)
				}
			}
			continue
		}
		byKey[k] = l
		order = append(order, l)
	}
	for _, x := range order {
		slices.Sort(x.Paths)
	}
	slices.SortStableFunc(order, func(a, b *Error) int {
		if c := strings.Compare(a.Message, b.Message); c != 0 {
			return c
		}
		if c := strings.Compare(a.Details, b.Details); c != 0 {
			return c
		}
		return int(a.Level) - int(b.Level)
	})
	return order
}

// Error formats every diagnostic as "message: path, path" (and details on the next line),
// one per line, as Knative's webhook does.
func (e *Error) Error() string {
	var lines []string
	for _, x := range e.Flatten() {
		line := x.Message + ": " + strings.Join(x.Paths, ", ")
		if x.Details != "" {
			line += "\n" + x.Details
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// flatten joins path parts with dots, dropping empty parts and attaching [i] or [key]
// parts to the part before them: ["spec", "[0]", "name"] is "spec[0].name".
func flatten(parts []string) string {
	var out []string
	for _, part := range parts {
		for _, p := range strings.Split(part, ".") {
			switch {
			case p == Current:
			case len(out) > 0 && strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]"):
				out[len(out)-1] += p
			default:
				out = append(out, p)
			}
		}
	}
	return strings.Join(out, ".")
}

// Missing is "missing field(s)".
func Missing(paths ...string) *Error { return &Error{Message: "missing field(s)", Paths: paths} }

// Disallowed is "must not set the field(s)".
func Disallowed(paths ...string) *Error {
	return &Error{Message: "must not set the field(s)", Paths: paths}
}

// Invalid is "invalid value: <value>" about path, with optional details.
func Invalid(value any, path string, details ...string) *Error {
	return &Error{Message: fmt.Sprint("invalid value: ", value), Paths: []string{path}, Details: strings.Join(details, ", ")}
}

// InvalidArrayValue is Invalid about field[i].
func InvalidArrayValue(value any, field string, i int) *Error {
	return Invalid(value, Current).ViaFieldIndex(field, i)
}

// Generic is any message about paths.
func Generic(msg string, paths ...string) *Error { return &Error{Message: msg, Paths: paths} }

// MissingOneOf is "expected exactly one, got neither" about the alternatives.
func MissingOneOf(paths ...string) *Error {
	return &Error{Message: "expected exactly one, got neither", Paths: paths}
}

// MultipleOneOf is "expected exactly one, got both" about the alternatives set.
func MultipleOneOf(paths ...string) *Error {
	return &Error{Message: "expected exactly one, got both", Paths: paths}
}

// InvalidKeyName is "invalid key name <key>" about path.
func InvalidKeyName(key, path string, details ...string) *Error {
	return &Error{Message: fmt.Sprintf("invalid key name %q", key), Paths: []string{path}, Details: strings.Join(details, ", ")}
}

// OutOfBounds is "expected lower <= value <= upper" about path.
func OutOfBounds(value, lower, upper any, path string) *Error {
	return &Error{Message: fmt.Sprintf("expected %v <= %v <= %v", lower, value, upper), Paths: []string{path}}
}

// CheckDisallowed reports, as Disallowed, the JSON names of the fields of struct v that are
// set (differ from their zero value; an empty non-nil slice or map counts as set) but are
// not named in allowed. It is Knative's field masks (CheckDisallowedFields) in one function.
func CheckDisallowed(v any, allowed ...string) *Error {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil
	}
	var bad []string
	rt := rv.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		// The JSON name, as Knative reports it: "" for an embedded (inlined) struct.
		name := f.Name
		if tag := f.Tag.Get("json"); tag != "" && tag != "-" {
			name, _, _ = strings.Cut(tag, ",")
		}
		if f.Anonymous {
			name = ""
		}
		if slices.Contains(allowed, name) || rv.Field(i).IsZero() {
			continue
		}
		bad = append(bad, name)
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return Disallowed(bad...)
}
