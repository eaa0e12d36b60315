// Package apiserver is `skiff up`'s local API: a subset of the Kubernetes API faithful enough
// for kubectl, client-go (dynamic clients, informers) and `skiff apply/get/delete`, over the
// embedded store, for Skiff's kinds and the core kinds Knative YAML refers to. It serves
// discovery (legacy and aggregated), /version, OpenAPI v3 from deploy/crds' schemas, get and
// list with label and field selectors, tables with the CRDs' printer columns, watch with
// resourceVersions and bookmarks, create, update with optimistic concurrency, JSON merge and
// JSON patch (strategic merge for the core kinds), server-side apply with managedFields,
// delete with propagation policies and finalizers, the status subresource and dryRun, with
// errors as the API server's Status. Every write is defaulted and validated by api.Admit,
// Knative's webhook rebuilt, as in a cluster.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
	"github.com/skiff-dev/skiff/controlplane/apiserver/openapi"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/deploy/crds"
)

// maxBody bounds a request body: resources are small, and a bound keeps memory safe.
const maxBody = 4 << 20

// Storage is what the API serves from: the embedded store.
type Storage interface {
	GetRaw(ctx context.Context, key store.Key) (json.RawMessage, error)
	ListAt(ctx context.Context, kind, namespace string) ([][]byte, uint64, error)
	ResourceVersion() (uint64, error)
	Changes(ctx context.Context, kind, namespace string, after uint64, limit, scan int) (events []store.Event, upTo, current uint64, err error)
	Changed() <-chan struct{}
	CreateWith(ctx context.Context, obj store.Object, opts store.WriteOptions) error
	UpdateWith(ctx context.Context, obj store.Object, opts store.WriteOptions) error
	UpdateStatusWith(ctx context.Context, obj store.Object, opts store.WriteOptions) error
	DeleteWith(ctx context.Context, key store.Key, opts store.DeleteOptions) (json.RawMessage, bool, error)
}

var _ Storage = (*store.Store)(nil)

// Options tune the API.
type Options struct {
	// BookmarkInterval is how often a watch that allows bookmarks gets one (a minute when 0,
	// as kube-apiserver sends them).
	BookmarkInterval time.Duration
	// MaxWatchTimeout bounds a watch without timeoutSeconds (30 minutes when 0); the client
	// then watches again from where it was.
	MaxWatchTimeout time.Duration
	// MaxWatches bounds the watches open at once (1024 when 0); one more is answered 429, and
	// clients retry.
	MaxWatches int
}

// Server serves the resource API.
type Server struct {
	store Storage
	log   *slog.Logger
	// cfg holds the settings in force (SetSettings replaces them).
	cfg     atomic.Pointer[config.Config]
	opts    Options
	kinds   []*api.Kind
	crds    map[schema.GroupVersionKind]*crds.Version
	openapi *openapi.Documents
	// fields track managedFields and merge server-side applies, per kind and subresource.
	fields map[fieldsKey]*managedfields.FieldManager
	// protobuf decodes the core kinds kubectl's typed clients send as protobuf.
	protobuf runtime.Decoder
	// checkConfigMap, when set, validates ConfigMaps before they are stored (Knative's
	// config-* ConfigMaps, refused naming the bad key so the old settings stay in force).
	checkConfigMap func(cm *api.ConfigMap) *fielderr.Error

	// watches holds a token per open watch.
	watches chan struct{}
	// closed is cancelled by Close: watches end.
	closed context.Context
	close  context.CancelFunc
}

type fieldsKey struct {
	kind        *api.Kind
	subresource string
}

// New returns the API handler over s. cfg holds the settings (config-features,
// config-defaults, config-autoscaler) writes are defaulted and validated with; nil means
// Knative's defaults.
func New(s Storage, logger *slog.Logger, cfg *config.Config, opts Options) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg == nil {
		cfg = config.Default()
	}
	if opts.BookmarkInterval <= 0 {
		opts.BookmarkInterval = time.Minute
	}
	if opts.MaxWatchTimeout <= 0 {
		opts.MaxWatchTimeout = 30 * time.Minute
	}
	if opts.MaxWatches <= 0 {
		opts.MaxWatches = 1024
	}
	defs, err := crds.Load()
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	srv := &Server{store: s, log: logger.With("component", "apiserver"), opts: opts,
		kinds: api.ServedKinds(), crds: defs, protobuf: protobufDecoder(), watches: make(chan struct{}, opts.MaxWatches)}
	srv.cfg.Store(cfg)
	srv.closed, srv.close = context.WithCancel(context.Background())
	schemas := map[schema.GroupVersionKind]json.RawMessage{}
	for gvk, v := range defs {
		schemas[gvk] = v.Schema
	}
	if srv.openapi, err = openapi.Build(srv.kinds, schemas); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	if srv.fields, err = fieldManagers(srv.kinds, srv.openapi); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	return srv, nil
}

// SetSettings puts cfg in force for the writes that follow, as Knative's webhook follows
// edits of its ConfigMaps; nil means Knative's defaults.
func (s *Server) SetSettings(cfg *config.Config) {
	if cfg == nil {
		cfg = config.Default()
	}
	s.cfg.Store(cfg)
}

// CheckConfigMaps makes writes of ConfigMaps pass check first; it returns s.
func (s *Server) CheckConfigMaps(check func(cm *api.ConfigMap) *fielderr.Error) *Server {
	s.checkConfigMap = check
	return s
}

// Close ends every watch (an http.Server's Shutdown waits for them otherwise).
func (s *Server) Close() { s.close() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(r.URL.Path, "/")
	segs := strings.Split(p, "/")
	if r.Method != http.MethodGet && (p == "api" || p == "apis" || p == "version" || segs[0] == "openapi" ||
		(segs[0] == "api" && len(segs) == 2) || (segs[0] == "apis" && len(segs) <= 3)) {
		s.fail(w, errMethodNotAllowed(r.Method, r.URL.Path))
		return
	}
	switch {
	case p == "healthz" || p == "readyz" || p == "livez":
		io.WriteString(w, "ok")
	case p == "version":
		s.version(w)
	case p == "api":
		s.coreVersions(w, r)
	case p == "apis":
		s.groups(w, r)
	case segs[0] == "openapi":
		s.openAPI(w, r, segs[1:])
	case segs[0] == "api" && len(segs) == 2:
		s.resources(w, "", segs[1])
	case segs[0] == "apis" && len(segs) == 2:
		s.group(w, segs[1])
	case segs[0] == "apis" && len(segs) == 3:
		s.resources(w, segs[1], segs[2])
	case segs[0] == "api" && len(segs) > 2:
		s.resource(w, r, "", segs[1], segs[2:])
	case segs[0] == "apis" && len(segs) > 3:
		s.resource(w, r, segs[1], segs[2], segs[3:])
	default:
		s.fail(w, errPathNotFound())
	}
}

// target is what a resource request is about.
type target struct {
	kind *api.Kind
	// namespace is "" for a cluster-scoped kind, or a list across namespaces.
	namespace, name, subresource string
}

func (t *target) key() store.Key {
	return store.Key{Kind: t.kind.Kind, Namespace: t.namespace, Name: t.name}
}

func (s *Server) lookup(group, version, plural string) *api.Kind {
	for _, k := range s.kinds {
		if k.Group == group && k.Version == version && k.Plural == plural {
			return k
		}
	}
	return nil
}

// resource serves /api/v1/... and /apis/{group}/{version}/...: rest is what follows.
func (s *Server) resource(w http.ResponseWriter, r *http.Request, group, version string, rest []string) {
	t := &target{}
	if rest[0] == "namespaces" && len(rest) >= 3 && s.lookup(group, version, rest[2]) != nil {
		t.kind, t.namespace = s.lookup(group, version, rest[2]), rest[1]
		rest = rest[3:]
		if t.kind.ClusterScoped {
			s.fail(w, errPathNotFound())
			return
		}
	} else {
		t.kind = s.lookup(group, version, rest[0])
		rest = rest[1:]
		if t.kind == nil || (!t.kind.ClusterScoped && len(rest) > 0) {
			s.fail(w, errPathNotFound())
			return
		}
	}
	if len(rest) > 0 {
		t.name = rest[0]
	}
	if len(rest) > 1 {
		t.subresource = rest[1]
	}
	if len(rest) > 2 || (t.subresource != "" && (t.subresource != "status" || !t.kind.StatusSubresource)) {
		s.fail(w, errPathNotFound())
		return
	}
	allNamespaces := !t.kind.ClusterScoped && t.namespace == ""
	switch {
	case t.name == "" && r.Method == http.MethodGet:
		if isWatch(r) {
			s.watch(w, r, t)
			return
		}
		s.list(w, r, t)
	case t.name == "" && r.Method == http.MethodPost && !allNamespaces:
		s.create(w, r, t)
	case t.name == "" && r.Method == http.MethodDelete && !allNamespaces:
		s.deleteCollection(w, r, t)
	case t.name != "" && r.Method == http.MethodGet:
		s.get(w, r, t)
	case t.name != "" && r.Method == http.MethodPut:
		s.update(w, r, t)
	case t.name != "" && r.Method == http.MethodPatch:
		s.patch(w, r, t)
	case t.name != "" && r.Method == http.MethodDelete && t.subresource == "":
		s.delete(w, r, t)
	default:
		s.fail(w, errMethodNotAllowed(r.Method, r.URL.Path))
	}
}

func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "true" || v == "1"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// EnsureNamespace creates the Namespace name unless it exists: `skiff up` has a "default"
// namespace, as every cluster does.
func (s *Server) EnsureNamespace(ctx context.Context, name string) error {
	k := api.LookupGVK("v1", "Namespace")
	if _, err := s.store.GetRaw(ctx, store.Key{Kind: k.Kind, Name: name}); err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ns := &api.Namespace{}
	ns.APIVersion, ns.Kind, ns.Name = "v1", k.Kind, name
	if _, err := s.admit(ctx, k, ns, nil, nil); err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	if err := s.store.CreateWith(ctx, ns, store.WriteOptions{}); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}
