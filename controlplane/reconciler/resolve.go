package reconciler

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// Knative's names for a revision whose images are being, or could not be, resolved.
const (
	ReasonResolvingDigests = "ResolvingDigests"
	ReasonContainerMissing = "ContainerMissing"
)

// DefaultDigestResolutionTimeout is Knative's digest-resolution-timeout default.
const DefaultDigestResolutionTimeout = 10 * time.Second

// digestResolutionWorkers bounds the resolutions in flight (Knative runs 100 in a cluster; a
// laptop needs few).
const digestResolutionWorkers = 4

// DigestResolver resolves one image to a digest ("repo@sha256:..."), or to "" when it is not
// to be resolved (a registry skipping tag resolution), with the namespace's pull secrets.
type DigestResolver interface {
	Resolve(ctx context.Context, namespace string, pullSecrets []string, image string) (string, error)
}

// backgroundResolver resolves revisions' images off the reconcile path, as Knative's revision
// reconciler does (pkg/reconciler/revision/background.go): the first Resolve of a revision
// queues its images and returns nothing; the revision is enqueued again once they are all
// resolved or one failed; a failed image is retried with per-image exponential backoff
// (1s doubling to 1000s, as Knative's).
type backgroundResolver struct {
	resolver DigestResolver
	enqueue  func(store.Key)
	queue    workqueue.TypedRateLimitingInterface[workItem]

	mu      sync.RWMutex
	results map[store.Key]*resolveResult
}

type resolveResult struct {
	namespace          string
	secrets            []string
	completionCallback func()
	workItems          []workItem
	imagesResolved     map[string]string
	imagesToBeResolved map[string]bool
	err                error
}

type workItem struct {
	revision store.Key
	timeout  time.Duration
	image    string
}

func newBackgroundResolver(resolver DigestResolver, queue workqueue.TypedRateLimitingInterface[workItem], enqueue func(store.Key)) *backgroundResolver {
	return &backgroundResolver{resolver: resolver, enqueue: enqueue, queue: queue, results: map[store.Key]*resolveResult{}}
}

// newDigestQueue is Knative's digest queue: per image exponential backoff from 1s to 1000s
// (the first attempt at once), within 10 resolutions a second overall.
func newDigestQueue() workqueue.TypedRateLimitingInterface[workItem] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.NewTypedMaxOfRateLimiter[workItem](
		newItemExponentialFailureRateLimiter[workItem](time.Second, 1000*time.Second),
		&workqueue.TypedBucketRateLimiter[workItem]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	), workqueue.TypedRateLimitingQueueConfig[workItem]{Name: "digests"})
}

// Start runs workers until ctx is done; the returned channel closes once they have stopped.
func (r *backgroundResolver) Start(ctx context.Context, workers int) <-chan struct{} {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				item, shutdown := r.queue.Get()
				if shutdown {
					return
				}
				r.processWorkItem(item)
			}
		})
	}
	wg.Go(func() {
		<-ctx.Done()
		r.queue.ShutDown()
	})
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// Resolve returns the revision's container statuses with their digests once every image is
// resolved, or the first error. nil, nil means a resolution was queued or is in flight: the
// revision is enqueued when it completes.
func (r *backgroundResolver) Resolve(rev *servingv1.Revision, timeout time.Duration) ([]servingv1.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := store.Key{Kind: servingv1.KindRevision, Namespace: rev.Namespace, Name: rev.Name}
	result, inFlight := r.results[name]
	if !inFlight {
		r.addWorkItems(rev, name, timeout)
		return nil, nil
	}
	if !result.ready() {
		return nil, nil
	}
	if result.err != nil {
		return nil, result.err
	}
	statuses := make([]servingv1.ContainerStatus, len(rev.Spec.Containers))
	for i, c := range rev.Spec.Containers {
		statuses[i] = servingv1.ContainerStatus{Name: c.Name, ImageDigest: result.imagesResolved[c.Image]}
	}
	return statuses, nil
}

// addWorkItems queues a resolution of each distinct image of the revision; r.mu is held.
func (r *backgroundResolver) addWorkItems(rev *servingv1.Revision, name store.Key, timeout time.Duration) {
	var secrets []string
	for _, s := range rev.Spec.ImagePullSecrets {
		secrets = append(secrets, s.Name)
	}
	res := &resolveResult{
		namespace: rev.Namespace, secrets: secrets,
		imagesResolved: map[string]string{}, imagesToBeResolved: map[string]bool{},
		completionCallback: func() { r.enqueue(name) },
	}
	r.results[name] = res
	for _, c := range rev.Spec.Containers {
		if res.imagesToBeResolved[c.Image] {
			continue
		}
		item := workItem{revision: name, timeout: timeout, image: c.Image}
		res.workItems = append(res.workItems, item)
		res.imagesToBeResolved[c.Image] = true
		r.queue.AddRateLimited(item)
	}
}

// processWorkItem resolves one image and records it; the revision is enqueued once its result
// is complete.
func (r *backgroundResolver) processWorkItem(item workItem) {
	defer r.queue.Done(item)
	r.mu.RLock()
	result := r.results[item.revision]
	r.mu.RUnlock()
	if result == nil {
		return // cleared meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), item.timeout)
	defer cancel()
	digest, err := r.resolver.Resolve(ctx, result.namespace, result.secrets, item.image)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.queue.Forget(item)
	}
	if result.ready() {
		return // another image failed first: the callback ran
	}
	if err != nil {
		result.err = fmt.Errorf("Unable to fetch image %q: failed to resolve image to digest: %w", item.image, err) //nolint:staticcheck // Knative's message
		result.completionCallback()
		return
	}
	result.imagesResolved[item.image] = digest
	if result.ready() {
		result.completionCallback()
	}
}

// Clear forgets the revision's result, so the next Resolve starts over.
func (r *backgroundResolver) Clear(name store.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.results, name)
}

// Forget clears the revision and its per-image backoff: for a deleted revision.
func (r *backgroundResolver) Forget(name store.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	result := r.results[name]
	if result == nil {
		return
	}
	for _, item := range result.workItems {
		r.queue.Forget(item)
	}
	delete(r.results, name)
}

func (r *resolveResult) ready() bool {
	return len(r.imagesToBeResolved) == len(r.imagesResolved) || r.err != nil
}

// itemExponentialFailureRateLimiter waits baseDelay*2^(failures-1), capped at maxDelay, before
// an item's next attempt; the first attempt does not wait (Knative's rate_limiter.go, after
// client-go's, which waits baseDelay at once).
type itemExponentialFailureRateLimiter[T comparable] struct {
	mu        sync.Mutex
	failures  map[T]int
	baseDelay time.Duration
	maxDelay  time.Duration
}

func newItemExponentialFailureRateLimiter[T comparable](baseDelay, maxDelay time.Duration) workqueue.TypedRateLimiter[T] {
	return &itemExponentialFailureRateLimiter[T]{failures: map[T]int{}, baseDelay: baseDelay, maxDelay: maxDelay}
}

func (r *itemExponentialFailureRateLimiter[T]) When(item T) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	failures := r.failures[item]
	r.failures[item] = failures + 1
	if failures == 0 {
		return 0
	}
	backoff := float64(r.baseDelay.Nanoseconds()) * math.Pow(2, float64(failures-1))
	if backoff > math.MaxInt64 || time.Duration(backoff) > r.maxDelay {
		return r.maxDelay
	}
	return time.Duration(backoff)
}

func (r *itemExponentialFailureRateLimiter[T]) NumRequeues(item T) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures[item]
}

func (r *itemExponentialFailureRateLimiter[T]) Forget(item T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, item)
}
