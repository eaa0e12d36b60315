package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/dispatch"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// ImagesConfig configures how `skiff up` runs container images (controlplane/runtime/oci).
type ImagesConfig struct {
	// Runc is the runc binary; default "runc". "none" runs no images (they are
	// ImageUnsupported), as when runc cannot run here.
	Runc string
	// CacheBytes bounds the image cache under {DataDir}/images; 0 means image.DefaultMaxBytes.
	CacheBytes int64
	// SkipRegistries are the registries whose tags are not resolved to digests (Knative's
	// registries-skipping-tag-resolving); nil means image.DefaultSkipRegistries.
	SkipRegistries []string
	// ResolveTimeout bounds one tag resolution (Knative's digest-resolution-timeout); 0 means
	// the default, 10s.
	ResolveTimeout time.Duration
	// PullBackoff and MaxPullBackoff pace retries of a failed pull; 0 means the kubelet's
	// (10s doubling to 5m).
	PullBackoff, MaxPullBackoff time.Duration
}

// runtimes makes the process runtime, and the OCI runtime when runc can run here, behind one
// dispatcher; it returns the reason there is no OCI runtime, if there is none.
func (cp *ControlPlane) runtimes(cfg Config, onChange func(ns, name string)) (*dispatch.Runtime, string, error) {
	cp.process = local.New(local.Config{
		DataDir: cfg.DataDir, WorkDir: cfg.WorkDir, Logger: cfg.Logger, DrainTimeout: cfg.DrainTimeout,
		MaxInstances: cfg.MaxInstances,
		OnChange:     onChange,
	})
	ic := cfg.Images
	if ic.Runc == "none" {
		return dispatch.New(cp.process, nil, "disabled (--oci-runtime none)", onChange), "disabled (--oci-runtime none)", nil
	}
	cgroups, err := oci.Check(context.Background(), cmp.Or(ic.Runc, "runc"), filepath.Join(cfg.DataDir, "oci"))
	if err != nil {
		cfg.Logger.Warn("container images cannot run here: only ko:// images and commands will", "reason", err)
		return dispatch.New(cp.process, nil, err.Error(), onChange), err.Error(), nil
	}
	if !cgroups {
		cfg.Logger.Warn("runc cannot create cgroups here: resources.limits are not applied to containers")
	}
	cp.images, err = image.OpenStore(image.StoreConfig{Dir: filepath.Join(cfg.DataDir, "images"), MaxBytes: ic.CacheBytes, Logger: cfg.Logger})
	if err != nil {
		return nil, "", err
	}
	objs := storeObjects{cp.store}
	cp.oci, err = oci.New(oci.Config{
		DataDir: cfg.DataDir, Images: cp.images, Runc: ic.Runc, Objects: objs, Cgroups: cgroups,
		Keychain: objs.keychain, Logger: cfg.Logger, OnChange: onChange, DrainTimeout: cfg.DrainTimeout,
		PullBackoff: ic.PullBackoff, MaxPullBackoff: ic.MaxPullBackoff,
	})
	if err != nil {
		return nil, "", err
	}
	return dispatch.New(cp.process, cp.oci, "", onChange), "", nil
}

// closeRuntimes stops every instance of both runtimes.
func (cp *ControlPlane) closeRuntimes(ctx context.Context) {
	if cp.oci != nil {
		if err := cp.oci.Close(ctx); err != nil {
			cp.log.Warn("stopping the OCI runtime", "err", err)
		}
	}
	if err := cp.process.Close(ctx); err != nil {
		cp.log.Warn("stopping the process runtime", "err", err)
	}
}

// Runtime is the revisions' runtime (for tests and benchmarks: its State).
func (cp *ControlPlane) Runtime() runtime.Runtime { return cp.runtime }

// OCIRuntime is the container runtime; nil when images cannot run here.
func (cp *ControlPlane) OCIRuntime() *oci.Runtime { return cp.oci }

// registryHandler is a registry (OCI distribution API) at /v2/ on the API address, when images
// can run: `skiff func deploy` pushes the function's image there and the Service names it by
// digest. Blobs are kept under {DataDir}/registry; manifests only in memory, so after a
// restart a revision runs from the image cache, which keeps what it pulled.
func registryHandler(dataDir string, logger *slog.Logger) http.Handler {
	dir := filepath.Join(dataDir, "registry")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		logger.Error("creating the registry's blob directory", "err", err)
	}
	return registry.New(
		registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)),
		registry.Logger(log.New(slogWriter{logger}, "", 0)),
	)
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(p), "component", "registry")
	return len(p), nil
}

// storeObjects reads Secrets and ConfigMaps from the store for the OCI runtime and for tag
// resolution.
type storeObjects struct{ store store.Interface }

func (o storeObjects) ConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	err := o.store.Get(ctx, store.Key{Kind: "ConfigMap", Namespace: ns, Name: name}, &cm)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, oci.ErrNotFound)
	}
	return &cm, err
}

func (o storeObjects) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := o.store.Get(ctx, store.Key{Kind: "Secret", Namespace: ns, Name: name}, &s)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, oci.ErrNotFound)
	}
	return &s, err
}

// keychain is the credentials of a namespace's pull secrets, then the docker config. A pull
// secret that does not exist is skipped, as the kubelet skips it.
func (o storeObjects) keychain(ctx context.Context, ns string, names []string) (authn.Keychain, error) {
	var secrets []*corev1.Secret
	for _, n := range names {
		s, err := o.Secret(ctx, ns, n)
		if errors.Is(err, oci.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, s)
	}
	return image.Keychain(nil, secrets...)
}

// digestResolver resolves tags for the revision reconciler with the namespace's pull secrets.
type digestResolver struct {
	resolver *image.Resolver
	objects  storeObjects
}

func (d digestResolver) Resolve(ctx context.Context, ns string, secrets []string, img string) (string, error) {
	kc, err := d.objects.keychain(ctx, ns, secrets)
	if err != nil {
		return "", err
	}
	digest, err := d.resolver.Resolve(ctx, img, kc)
	if err != nil {
		// The cause in words before the registry's own message.
		reason := image.Reason(err)
		var ie *image.Error
		if errors.As(err, &ie) {
			err = ie.Err
		}
		return "", fmt.Errorf("%s: %w", causeWords[reason], err)
	}
	return digest, nil
}

var causeWords = map[string]string{
	image.ReasonNotFound:     "image not found",
	image.ReasonUnauthorized: "the registry refused the credentials",
	image.ReasonUnreachable:  "the registry is unreachable",
	image.ReasonInvalid:      "invalid image",
	image.ReasonPlatform:     "wrong platform",
	image.ReasonTooLarge:     "image too large",
}
