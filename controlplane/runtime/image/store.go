package image

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultMaxBytes is StoreConfig.MaxBytes' default: the unpacked layers the cache keeps.
const DefaultMaxBytes = 10 << 30

// StoreConfig configures a Store. Zero values take the documented defaults.
type StoreConfig struct {
	// Dir holds the cache: layers/<diff id hex>/ (unpacked), images/<digest hex>.json, tmp/.
	Dir string
	// MaxBytes bounds the unpacked layers kept. Past it, the least recently used images that no
	// one holds are evicted, with the layers no remaining image uses, down to 80% of it (the
	// kubelet's image GC works the same way between its high and low thresholds). An image
	// larger than MaxBytes on its own fails with ReasonTooLarge. Default DefaultMaxBytes.
	MaxBytes int64
	// Platform is the OS and architecture images must be for. Default linux and GOARCH.
	Platform *v1.Platform
	// MaxConcurrentPulls bounds the pulls that talk to registries at once. Default 3.
	MaxConcurrentPulls int
	// Transport carries registry requests. Default http.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent to registries. Default "skiff".
	UserAgent string
	// Retry is go-containerregistry's backoff within one Pull for temporary failures; see
	// Resolver.Retry.
	Retry *remote.Backoff
	// Logger receives pull progress. Default slog.Default().
	Logger *slog.Logger
}

// Store is the content-addressed image cache. It is safe for concurrent use.
type Store struct {
	cfg      StoreConfig
	log      *slog.Logger
	platform v1.Platform
	pulls    chan struct{} // semaphore of MaxConcurrentPulls

	mu      sync.Mutex
	records map[string]*record // by the digest an image is known by
	sizes   map[string]int64   // unpacked bytes of each layer on disk, by diff ID
	pins    map[string]int     // images held by a caller, by record key
	busy    map[string]int     // layers a pull in progress holds, by diff ID
	layerMu map[string]*layerLock
}

// record is what the cache knows of one image, as stored in images/<hex>.json.
type record struct {
	// Digest is the digest the image is known by: the one pulled by, or the manifest's.
	Digest string `json:"digest"`
	// Manifest is the platform image's manifest digest (differs from Digest for an index).
	Manifest string `json:"manifest"`
	// Ref is the reference it was first pulled by.
	Ref    string        `json:"ref"`
	Config v1.ConfigFile `json:"config"`
	// Layers are diff IDs, bottom first; Sizes their unpacked bytes.
	Layers   []string         `json:"layers"`
	Sizes    map[string]int64 `json:"sizes"`
	LastUsed time.Time        `json:"lastUsed"`
}

type layerLock struct {
	mu   sync.Mutex
	refs int
}

// Image is a pulled image, held in the cache (not evicted) until Release.
type Image struct {
	// Ref is the reference the caller asked for.
	Ref string
	// Digest is the digest the image is known by (the caller's, or the manifest's for a tag).
	Digest string
	// Config is the image's configuration (entrypoint, env, user, ...).
	Config v1.ConfigFile
	// Layers are the unpacked layer directories, bottom first, for overlayfs's lowerdir.
	Layers []string
	// Size is the unpacked bytes of its layers.
	Size int64

	store    *Store
	key      string
	released sync.Once
}

// Release lets the cache evict the image again.
func (i *Image) Release() {
	i.released.Do(func() { i.store.unpin(i.key) })
}

// OpenStore opens (creating) the cache in cfg.Dir, removing what an interrupted pull left.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("image store: no directory")
	}
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultMaxBytes)
	cfg.MaxConcurrentPulls = cmp.Or(cfg.MaxConcurrentPulls, 3)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger.With("component", "runtime/image"),
		platform: v1.Platform{OS: "linux", Architecture: goruntime.GOARCH},
		pulls:    make(chan struct{}, cfg.MaxConcurrentPulls),
		records:  map[string]*record{}, sizes: map[string]int64{}, pins: map[string]int{},
		busy: map[string]int{}, layerMu: map[string]*layerLock{},
	}
	if cfg.Platform != nil {
		s.platform = *cfg.Platform
	}
	if err := os.RemoveAll(s.path("tmp")); err != nil {
		return nil, fmt.Errorf("image store: clearing tmp: %w", err)
	}
	for _, d := range []string{"layers", "images", "tmp"} {
		if err := os.MkdirAll(s.path(d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	entries, err := os.ReadDir(s.path("images"))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		var rec record
		data, err := os.ReadFile(s.path("images", e.Name()))
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil || rec.Digest == "" {
			s.log.Warn("dropping an unreadable image record", "file", e.Name(), "err", err)
			_ = os.Remove(s.path("images", e.Name()))
			continue
		}
		complete := true
		for _, l := range rec.Layers {
			if _, err := os.Stat(s.layerDir(l)); err != nil {
				complete = false
			}
		}
		if !complete {
			_ = os.Remove(s.path("images", e.Name()))
			continue
		}
		s.records[rec.Digest] = &rec
		for l, n := range rec.Sizes {
			s.sizes[l] = n
		}
	}
	// Layers no image names: left by a pull that stopped before writing its record.
	layers, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, e := range layers {
		if _, ok := s.sizes["sha256:"+e.Name()]; !ok {
			_ = os.RemoveAll(s.path("layers", e.Name()))
		}
	}
	return s, nil
}

func (s *Store) path(parts ...string) string {
	return filepath.Join(append([]string{s.cfg.Dir}, parts...)...)
}

func (s *Store) layerDir(diffID string) string {
	return s.path("layers", strings.TrimPrefix(diffID, "sha256:"))
}

// Size is the unpacked bytes of every layer in the cache.
func (s *Store) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.sizes {
		n += v
	}
	return n
}

// Pull returns the image ref names, from the cache when ref names a digest already there
// (no registry is asked), else from the registry: the manifest (an index's entry for the
// Store's platform), the config and every layer not cached yet, each checked against its
// digest and unpacked. kc authenticates (authn.DefaultKeychain when nil); logf, when set,
// receives progress lines. The image is held until Release. Errors are *Error.
func (s *Store) Pull(ctx context.Context, ref string, kc authn.Keychain, logf func(format string, args ...any)) (*Image, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, &Error{Reason: ReasonInvalid, Image: ref, Err: fmt.Errorf("invalid image reference: %w", err)}
	}
	if d, ok := r.(name.Digest); ok {
		if img := s.cached(ref, d.DigestStr()); img != nil {
			logf("image %s is in the cache", ref)
			return img, nil
		}
	}
	select {
	case s.pulls <- struct{}{}:
	case <-ctx.Done():
		return nil, wrap(ref, ctx.Err())
	}
	defer func() { <-s.pulls }()
	start := time.Now()
	logf("pulling image %s", ref)
	opts := append(remoteOptions(ctx, kc, s.cfg.Transport, s.cfg.UserAgent, s.cfg.Retry), remote.WithPlatform(s.platform))
	img, err := remote.Image(r, opts...)
	if err != nil {
		if strings.Contains(err.Error(), "no child with platform") {
			return nil, &Error{Reason: ReasonPlatform, Image: ref, Err: fmt.Errorf("the image has no %s variant: %w", s.platformString(), err)}
		}
		return nil, wrap(ref, err)
	}
	manifest, err := img.Digest()
	if err != nil {
		return nil, wrap(ref, fmt.Errorf("reading the manifest: %w", err))
	}
	key := manifest.String()
	if d, ok := r.(name.Digest); ok {
		key = d.DigestStr()
	}
	if cached := s.cached(ref, key); cached != nil {
		logf("image %s is in the cache as %s", ref, key)
		return cached, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, &Error{Reason: Reason(err), Image: ref, Err: fmt.Errorf("reading the image's config: %w", err)}
	}
	if err := s.checkPlatform(cf); err != nil {
		return nil, &Error{Reason: ReasonPlatform, Image: ref, Err: err}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, wrap(ref, fmt.Errorf("reading the layers: %w", err))
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, &Error{Reason: ReasonInvalid, Image: ref, Err: fmt.Errorf("the manifest has %d layers, the config %d diff IDs", len(layers), len(cf.RootFS.DiffIDs))}
	}
	rec := &record{Digest: key, Manifest: manifest.String(), Ref: ref, Config: *cf, Sizes: map[string]int64{}}
	var held []string // layers this pull keeps from eviction until the record exists
	defer func() {
		s.mu.Lock()
		for _, l := range held {
			if s.busy[l]--; s.busy[l] <= 0 {
				delete(s.busy, l)
			}
		}
		s.mu.Unlock()
	}()
	var total int64
	for i, l := range layers {
		diffID := cf.RootFS.DiffIDs[i].String()
		s.mu.Lock()
		s.busy[diffID]++
		s.mu.Unlock()
		held = append(held, diffID)
		size, fetched, err := s.ensureLayer(ctx, ref, l, diffID, s.cfg.MaxBytes-total, func(format string, args ...any) {
			logf("layer %d/%d %s: "+format, append([]any{i + 1, len(layers), short(diffID)}, args...)...)
		})
		if err != nil {
			return nil, err
		}
		if !fetched {
			logf("layer %d/%d %s: cached", i+1, len(layers), short(diffID))
		}
		total += size
		rec.Layers = append(rec.Layers, diffID)
		rec.Sizes[diffID] = size
	}
	rec.LastUsed = time.Now()
	if err := s.writeRecord(rec); err != nil {
		return nil, wrap(ref, err)
	}
	s.mu.Lock()
	s.records[key] = rec
	out := s.imageLocked(ref, rec)
	s.gcLocked()
	s.mu.Unlock()
	logf("pulled image %s (%s, %d layers, %s unpacked) in %s", ref, key, len(rec.Layers), bytesString(total), time.Since(start).Round(time.Millisecond))
	return out, nil
}

func (s *Store) platformString() string {
	p := s.platform.OS + "/" + s.platform.Architecture
	if s.platform.Variant != "" {
		p += "/" + s.platform.Variant
	}
	return p
}

// checkPlatform refuses an image whose config says it is for another OS or architecture.
func (s *Store) checkPlatform(cf *v1.ConfigFile) error {
	if (cf.OS != "" && cf.OS != s.platform.OS) || (cf.Architecture != "" && cf.Architecture != s.platform.Architecture) {
		return fmt.Errorf("the image is for %s/%s, this machine runs %s", cf.OS, cf.Architecture, s.platformString())
	}
	return nil
}

// cached returns the image recorded under key, held, with its last use updated; nil when the
// cache does not have it (complete).
func (s *Store) cached(ref, key string) *Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[key]
	if rec == nil {
		return nil
	}
	for _, l := range rec.Layers {
		if _, err := os.Stat(s.layerDir(l)); err != nil {
			return nil
		}
	}
	rec.LastUsed = time.Now()
	_ = s.writeRecord(rec) // the use time only orders eviction
	return s.imageLocked(ref, rec)
}

// imageLocked makes the held Image of a record.
func (s *Store) imageLocked(ref string, rec *record) *Image {
	s.pins[rec.Digest]++
	img := &Image{Ref: ref, Digest: rec.Digest, Config: rec.Config, store: s, key: rec.Digest}
	for _, l := range rec.Layers {
		img.Layers = append(img.Layers, s.layerDir(l))
		img.Size += rec.Sizes[l]
	}
	return img
}

func (s *Store) unpin(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[key]--; s.pins[key] <= 0 {
		delete(s.pins, key)
	}
	s.gcLocked()
}

// ensureLayer makes sure the layer is unpacked in the cache, downloading it if not; it
// returns its unpacked size and whether it was fetched now. Two pulls of one layer fetch it
// once.
func (s *Store) ensureLayer(ctx context.Context, ref string, l v1.Layer, diffID string, limit int64, logf func(string, ...any)) (int64, bool, error) {
	unlock := s.lockLayer(diffID)
	defer unlock()
	s.mu.Lock()
	size, ok := s.sizes[diffID]
	s.mu.Unlock()
	if ok {
		if _, err := os.Stat(s.layerDir(diffID)); err == nil {
			return size, false, nil
		}
	}
	if limit <= 0 {
		return 0, false, &Error{Reason: ReasonTooLarge, Image: ref, Err: fmt.Errorf("the image is larger than the image cache may hold (%s)", bytesString(s.cfg.MaxBytes))}
	}
	digest, err := l.Digest()
	if err != nil {
		return 0, false, wrap(ref, fmt.Errorf("layer %s: %w", short(diffID), err))
	}
	compressedSize, _ := l.Size()
	start := time.Now()
	logf("downloading %s", bytesString(compressedSize))
	rc, err := l.Compressed()
	if err != nil {
		return 0, false, wrap(ref, fmt.Errorf("layer %s: %w", digest, err))
	}
	defer rc.Close()
	tmp := s.path("tmp", strings.TrimPrefix(diffID, "sha256:")+"-"+randomSuffix())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return 0, false, wrap(ref, err)
	}
	defer os.RemoveAll(tmp)
	pr := &progressReader{r: rc, total: compressedSize, last: time.Now(), logf: logf}
	stats, err := unpackLayer(contextReader{ctx, pr}, tmp, limit)
	switch {
	case errors.Is(err, errTooLarge):
		return 0, false, &Error{Reason: ReasonTooLarge, Image: ref, Err: fmt.Errorf("the image is larger than the image cache may hold (%s)", bytesString(s.cfg.MaxBytes))}
	case err != nil && ctx.Err() != nil:
		return 0, false, wrap(ref, ctx.Err())
	case err != nil && stats.compressed != "" && stats.compressed != digest.String():
		return 0, false, &Error{Reason: ReasonInvalid, Image: ref, Err: fmt.Errorf("layer %s: the registry sent content whose digest is %s (%v)", digest, stats.compressed, err)}
	case err != nil:
		reason := ReasonInvalid
		if r := classify(err); r == ReasonUnreachable {
			reason = r
		}
		return 0, false, &Error{Reason: reason, Image: ref, Err: fmt.Errorf("layer %s: %w", digest, err)}
	case stats.compressed != digest.String():
		return 0, false, &Error{Reason: ReasonInvalid, Image: ref, Err: fmt.Errorf("layer %s: the registry sent content whose digest is %s", digest, stats.compressed)}
	case stats.uncompressed != diffID:
		return 0, false, &Error{Reason: ReasonInvalid, Image: ref, Err: fmt.Errorf("layer %s: its content's digest is %s, the config says %s", digest, stats.uncompressed, diffID)}
	}
	dst := s.layerDir(diffID)
	_ = os.RemoveAll(dst) // an incomplete leftover
	if err := os.Rename(tmp, dst); err != nil {
		return 0, false, wrap(ref, fmt.Errorf("layer %s: %w", digest, err))
	}
	s.mu.Lock()
	s.sizes[diffID] = stats.size
	s.mu.Unlock()
	logf("downloaded %s and unpacked %s in %s", bytesString(compressedSize), bytesString(stats.size), time.Since(start).Round(time.Millisecond))
	return stats.size, true, nil
}

// lockLayer serialises work on one layer across pulls.
func (s *Store) lockLayer(diffID string) (unlock func()) {
	s.mu.Lock()
	l := s.layerMu[diffID]
	if l == nil {
		l = &layerLock{}
		s.layerMu[diffID] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.layerMu, diffID)
		}
		s.mu.Unlock()
	}
}

func (s *Store) writeRecord(rec *record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	file := s.path("images", strings.TrimPrefix(rec.Digest, "sha256:")+".json")
	tmp := file + ".tmp-" + randomSuffix()
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing the image record: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing the image record: %w", err)
	}
	return nil
}

// gcLocked evicts least recently used, unheld images past MaxBytes, down to 80% of it, then
// the layers no image names.
func (s *Store) gcLocked() {
	var total int64
	for _, n := range s.sizes {
		total += n
	}
	if total <= s.cfg.MaxBytes {
		return
	}
	low := s.cfg.MaxBytes / 10 * 8
	var victims []*record
	for _, rec := range s.records {
		if s.pins[rec.Digest] == 0 {
			victims = append(victims, rec)
		}
	}
	slices.SortFunc(victims, func(a, b *record) int { return a.LastUsed.Compare(b.LastUsed) })
	for _, rec := range victims {
		if total <= low {
			break
		}
		delete(s.records, rec.Digest)
		_ = os.Remove(s.path("images", strings.TrimPrefix(rec.Digest, "sha256:")+".json"))
		s.log.Info("evicted image from the cache", "image", rec.Ref, "digest", rec.Digest)
		used := map[string]bool{}
		for _, r := range s.records {
			for _, l := range r.Layers {
				used[l] = true
			}
		}
		for _, l := range rec.Layers {
			if used[l] || s.busy[l] > 0 {
				continue
			}
			if _, ok := s.sizes[l]; !ok {
				continue
			}
			if err := os.RemoveAll(s.layerDir(l)); err != nil {
				s.log.Warn("removing an evicted layer", "layer", l, "err", err)
				continue
			}
			total -= s.sizes[l]
			delete(s.sizes, l)
		}
	}
}

// progressReader reports download progress every few seconds.
type progressReader struct {
	r     io.Reader
	total int64
	n     int64
	last  time.Time
	logf  func(string, ...any)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if time.Since(p.last) >= 2*time.Second {
		p.last = time.Now()
		p.logf("%s of %s", bytesString(p.n), bytesString(p.total))
	}
	return n, err
}

// contextReader stops a read once ctx is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
