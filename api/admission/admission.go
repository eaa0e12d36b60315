// Package admission carries what defaulting and validation need to know about the write being
// admitted, on a context.Context, as Knative's webhook does (knative.dev/pkg/apis contexts):
// whether it creates or updates an object (and the object it replaces), the user making it,
// the metadata of the object whose nested parts are being checked, and whether those parts are
// under spec. The same context drives `skiff apply`, the local API and the Kubernetes webhook.
package admission

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type (
	createKey  struct{}
	updateKey  struct{}
	userKey    struct{}
	parentKey  struct{}
	specKey    struct{}
	statusKey  struct{}
	subresKey  struct{}
	baselineOf struct{ old any }
)

// WithinCreate marks ctx as admitting a new object.
func WithinCreate(ctx context.Context) context.Context {
	return context.WithValue(ctx, createKey{}, true)
}

// IsInCreate reports whether ctx admits a new object.
func IsInCreate(ctx context.Context) bool { return ctx.Value(createKey{}) != nil }

// WithinUpdate marks ctx as admitting a change to old, which it replaces.
func WithinUpdate(ctx context.Context, old any) context.Context {
	return context.WithValue(ctx, updateKey{}, baselineOf{old})
}

// IsInUpdate reports whether ctx admits a change to an existing object.
func IsInUpdate(ctx context.Context) bool { return ctx.Value(updateKey{}) != nil }

// Baseline is the object an update replaces, or nil.
func Baseline(ctx context.Context) any {
	if b, ok := ctx.Value(updateKey{}).(baselineOf); ok {
		return b.old
	}
	return nil
}

// WithinSubresourceUpdate marks ctx as admitting a write to a subresource such as "status".
func WithinSubresourceUpdate(ctx context.Context, old any, subresource string) context.Context {
	return context.WithValue(WithinUpdate(ctx, old), subresKey{}, subresource)
}

// IsInStatusUpdate reports whether ctx admits a write of the status subresource only.
func IsInStatusUpdate(ctx context.Context) bool { return ctx.Value(subresKey{}) == "status" }

// WithUserInfo records the name of the user making the write.
func WithUserInfo(ctx context.Context, username string) context.Context {
	return context.WithValue(ctx, userKey{}, username)
}

// UserInfo is the name of the user making the write ("" when unknown, as in `skiff up`).
func UserInfo(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// WithinParent records the metadata of the object whose nested parts are checked (a
// Service's, for its template), for rules such as "a revision name has the parent's prefix".
func WithinParent(ctx context.Context, m metav1.ObjectMeta) context.Context {
	return context.WithValue(ctx, parentKey{}, m)
}

// ParentMeta is the metadata WithinParent recorded, or empty metadata.
func ParentMeta(ctx context.Context) metav1.ObjectMeta {
	m, _ := ctx.Value(parentKey{}).(metav1.ObjectMeta)
	return m
}

// WithinSpec marks ctx as checking something under spec.
func WithinSpec(ctx context.Context) context.Context {
	return context.WithValue(context.WithValue(ctx, statusKey{}, nil), specKey{}, true)
}

// IsInSpec reports whether ctx checks something under spec.
func IsInSpec(ctx context.Context) bool { return ctx.Value(specKey{}) != nil }

type otherNamespaceKey struct{}

// AllowDifferentNamespace lets references in the object point into other namespaces (Knative's
// apis.AllowDifferentNamespace, which a Broker's validation sets unless config-br-defaults'
// disallowDifferentNamespaceConfig is on).
func AllowDifferentNamespace(ctx context.Context) context.Context {
	return context.WithValue(ctx, otherNamespaceKey{}, true)
}

// IsDifferentNamespaceAllowed reports whether AllowDifferentNamespace was set.
func IsDifferentNamespaceAllowed(ctx context.Context) bool {
	return ctx.Value(otherNamespaceKey{}) != nil
}

// WithinStatus marks ctx as checking something under status.
func WithinStatus(ctx context.Context) context.Context {
	return context.WithValue(context.WithValue(ctx, specKey{}, nil), statusKey{}, true)
}

// IsInStatus reports whether ctx checks something under status.
func IsInStatus(ctx context.Context) bool { return ctx.Value(statusKey{}) != nil }

type cesqlKey struct{}

// WithCESQLCheck gives validation the function that checks a CESQL expression (a Trigger
// filter's cesql): api has no CESQL parser of its own, the proxy's filter evaluator does.
func WithCESQLCheck(ctx context.Context, check func(expr string) error) context.Context {
	return context.WithValue(ctx, cesqlKey{}, check)
}

// CESQLCheck is the function WithCESQLCheck gave, or nil (expressions are then not parsed).
func CESQLCheck(ctx context.Context) func(string) error {
	f, _ := ctx.Value(cesqlKey{}).(func(string) error)
	return f
}
