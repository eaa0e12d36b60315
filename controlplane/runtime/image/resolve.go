// Package image resolves, pulls and unpacks OCI images for the container runtime of `skiff up`,
// with go-containerregistry.
//
// Resolving turns a tag into a digest the way Knative's revision reconciler does
// (pkg/reconciler/revision/resolve.go): an image that already names a digest is kept, a tag on
// a registry listed in the skip set (Knative's registries-skipping-tag-resolving, default
// kind.local, ko.local, dev.local) resolves to "" (run as given), and any other tag is looked up
// with a HEAD request, authenticated from the revision's imagePullSecrets and the docker config.
//
// Pulling (Store) keeps a content-addressed cache under the data directory: each layer is
// unpacked once, by its uncompressed digest, into a directory in overlayfs's format (OCI
// whiteouts become overlay whiteouts and opaque directories), so images that share layers share
// them on disk and an instance's root filesystem is an overlay mount of its image's layers.
// Every byte is checked against the manifest's digests; the cache is bounded in size and evicts
// the least recently used images no revision runs.
package image

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultSkipRegistries is Knative's default of registries-skipping-tag-resolving
// (config-deployment): registries whose images are loaded onto nodes, not pulled.
var DefaultSkipRegistries = []string{"kind.local", "ko.local", "dev.local"}

// DefaultResolveTimeout is Knative's default digest-resolution-timeout.
const DefaultResolveTimeout = 10 * time.Second

// Resolver resolves image tags to digests.
type Resolver struct {
	// Transport carries the registry requests. Default: http.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent to registries. Default "skiff".
	UserAgent string
	// SkipRegistries are registries whose tags are not resolved (Resolve returns ""), by
	// host[:port] as written in the image. Nil means DefaultSkipRegistries.
	SkipRegistries []string
	// Retry is the backoff of go-containerregistry's own retries of a temporary failure within
	// one Resolve. Default: one retry after 100ms; the caller retries the rest with its backoff.
	Retry *remote.Backoff
}

// Resolve returns image pinned to a digest ("<repository>@sha256:..."): the image itself when it
// already names a digest, "" when its registry is in SkipRegistries, else the digest the
// registry serves for the tag now. kc authenticates (authn.DefaultKeychain when nil). Errors
// are *Error, classified by Reason.
func (r *Resolver) Resolve(ctx context.Context, image string, kc authn.Keychain) (string, error) {
	if _, err := name.NewDigest(image, name.WeakValidation); err == nil {
		return image, nil // already a digest
	}
	tag, err := name.NewTag(image, name.WeakValidation)
	if err != nil {
		return "", &Error{Reason: ReasonInvalid, Image: image, Err: fmt.Errorf("failed to parse image name %q into a tag: %w", image, err)}
	}
	skip := r.SkipRegistries
	if skip == nil {
		skip = DefaultSkipRegistries
	}
	if slices.Contains(skip, tag.RegistryStr()) {
		return "", nil
	}
	desc, err := remote.Head(tag, r.options(ctx, kc)...)
	if err != nil {
		return "", wrap(image, err)
	}
	return tag.Repository.String() + "@" + desc.Digest.String(), nil
}

// options are the remote options every registry call of the resolver uses.
func (r *Resolver) options(ctx context.Context, kc authn.Keychain) []remote.Option {
	return remoteOptions(ctx, kc, r.Transport, r.UserAgent, r.Retry)
}

func remoteOptions(ctx context.Context, kc authn.Keychain, tr http.RoundTripper, ua string, retry *remote.Backoff) []remote.Option {
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	if tr == nil {
		tr = http.DefaultTransport
	}
	if ua == "" {
		ua = "skiff"
	}
	b := remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 2}
	if retry != nil {
		b = *retry
	}
	return []remote.Option{
		remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(tr),
		remote.WithUserAgent(ua), remote.WithRetryBackoff(b),
	}
}

// IsDigest reports whether image names a digest (repository@sha256:...).
func IsDigest(image string) bool {
	_, err := name.NewDigest(image, name.WeakValidation)
	return err == nil
}

// Registry is the registry host[:port] image names ("index.docker.io" for short names), or ""
// when image is not a reference.
func Registry(image string) string {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return ""
	}
	return ref.Context().RegistryStr()
}

// trimScheme removes a URL scheme and any path from a docker config key, leaving host[:port]
// and, for keys that name a repository prefix, its path.
func trimScheme(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	return strings.TrimSuffix(strings.TrimSuffix(key, "/v1/"), "/v2/")
}
