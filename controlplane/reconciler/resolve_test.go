package reconciler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

type resolveFunc func(ctx context.Context, namespace string, secrets []string, image string) (string, error)

func (f resolveFunc) Resolve(ctx context.Context, namespace string, secrets []string, image string) (string, error) {
	return f(ctx, namespace, secrets, image)
}

var errDigest = errors.New("digest error")

func testRev(name, first, second string) *servingv1.Revision {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	r.Spec.Containers = []corev1.Container{{Name: "first", Image: first}, {Name: "second", Image: second}}
	r.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
	return r
}

// From Knative's pkg/reconciler/revision/background_test.go TestResolveInBackground (without
// init containers, which Skiff does not run).
func TestResolveInBackground(t *testing.T) {
	tests := []struct {
		name         string
		resolver     resolveFunc
		timeout      time.Duration
		wantStatuses []servingv1.ContainerStatus
		wantError    error
	}{{
		name: "success",
		resolver: func(_ context.Context, _ string, _ []string, img string) (string, error) {
			return img + "-digest", nil
		},
		wantStatuses: []servingv1.ContainerStatus{{Name: "first", ImageDigest: "first-image-digest"}, {Name: "second", ImageDigest: "second-image-digest"}},
	}, {
		name: "passing params",
		resolver: func(_ context.Context, ns string, secrets []string, img string) (string, error) {
			return fmt.Sprintf("%s-%s-%s", img, ns, secrets[0]), nil
		},
		wantStatuses: []servingv1.ContainerStatus{{Name: "first", ImageDigest: "first-image-ns-pull"}, {Name: "second", ImageDigest: "second-image-ns-pull"}},
	}, {
		name: "one slow resolve",
		resolver: func(_ context.Context, _ string, _ []string, img string) (string, error) {
			if img == "first-image" {
				time.Sleep(50 * time.Millisecond) // the first arrives after the second
			}
			return img + "-digest", nil
		},
		wantStatuses: []servingv1.ContainerStatus{{Name: "first", ImageDigest: "first-image-digest"}, {Name: "second", ImageDigest: "second-image-digest"}},
	}, {
		name: "resolver entirely fails",
		resolver: func(_ context.Context, _ string, _ []string, img string) (string, error) {
			return img + "-digest", errDigest
		},
		wantError: errDigest,
	}, {
		name: "resolver fails one image",
		resolver: func(_ context.Context, _ string, _ []string, img string) (string, error) {
			if img == "second-image" {
				return "", errDigest
			}
			return img + "-digest", nil
		},
		wantError: errDigest,
	}, {
		name:    "timeout",
		timeout: 10 * time.Millisecond,
		resolver: func(ctx context.Context, _ string, _ []string, img string) (string, error) {
			if img == "second-image" {
				select {
				case <-time.After(10 * time.Second):
				case <-ctx.Done():
				}
			}
			return img + "-digest", ctx.Err()
		},
		wantError: context.DeadlineExceeded,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 5 * time.Second
			if tt.timeout != 0 {
				timeout = tt.timeout
			}
			ready := make(chan store.Key, 1)
			subject := newBackgroundResolver(tt.resolver, workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[workItem]()),
				func(k store.Key) { ready <- k })
			ctx, cancel := context.WithCancel(context.Background())
			done := subject.Start(ctx, 10)
			defer func() { cancel(); <-done }()
			rev := testRev("rev", "first-image", "second-image")
			for i := range 2 {
				t.Run(fmt.Sprint("iteration", i), func(t *testing.T) {
					if statuses, err := subject.Resolve(rev, timeout); err != nil || statuses != nil {
						t.Errorf("first Resolve = %v, %v; want nil, nil (queued)", statuses, err)
					}
					select {
					case <-ready:
					case <-time.After(2 * time.Second):
						t.Fatal("the resolver did not report ready")
					}
					statuses, err := subject.Resolve(rev, timeout)
					if !errors.Is(err, tt.wantError) {
						t.Errorf("Resolve error = %v, want %v", err, tt.wantError)
					}
					if !reflect.DeepEqual(statuses, tt.wantStatuses) {
						t.Errorf("Resolve = %v, want %v", statuses, tt.wantStatuses)
					}
					subject.Clear(store.Key{Kind: servingv1.KindRevision, Namespace: rev.Namespace, Name: rev.Name})
				})
			}
		})
	}
}

// From Knative's TestRateLimitPerItem: a failing image waits longer each time; another
// revision is not slowed; Forget resets the backoff.
func TestRateLimitPerItem(t *testing.T) {
	resolver := resolveFunc(func(_ context.Context, _ string, _ []string, img string) (string, error) {
		if img == "img1" {
			return "", nil
		}
		return "", errors.New("failed")
	})
	baseDelay := 50 * time.Millisecond
	queue := workqueue.NewTypedRateLimitingQueue(newItemExponentialFailureRateLimiter[workItem](baseDelay, 5*time.Second))
	enqueue := make(chan struct{})
	subject := newBackgroundResolver(resolver, queue, func(store.Key) { enqueue <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	done := subject.Start(ctx, 1)
	defer func() { cancel(); <-done }()

	rev := testRev("rev", "img1", "img2")
	key := store.Key{Kind: servingv1.KindRevision, Namespace: rev.Namespace, Name: rev.Name}
	for i := range 3 {
		subject.Clear(key)
		start := time.Now()
		if statuses, err := subject.Resolve(rev, time.Second); err != nil || statuses != nil {
			t.Fatalf("Resolve = %v, %v; want nil, nil", statuses, err)
		}
		<-enqueue
		if _, err := subject.Resolve(rev, time.Second); err == nil {
			t.Fatal("want the resolve to fail")
		}
		// No delay on the first resolve.
		if expected := time.Duration(math.Pow(2, float64(i-1))) * baseDelay; time.Since(start) < expected {
			t.Fatalf("attempt %d after %s, want at least %s", i, time.Since(start), expected)
		}
	}
	t.Run("does not affect other revisions", func(t *testing.T) {
		start := time.Now()
		if statuses, err := subject.Resolve(testRev("another", "img1", "img2"), time.Second); err != nil || statuses != nil {
			t.Fatalf("Resolve = %v, %v", statuses, err)
		}
		<-enqueue
		if took := time.Since(start); took > baseDelay*4 {
			t.Fatal("another revision was slowed by the first one's backoff:", took)
		}
	})
	t.Run("forget clears the per-item backoff", func(t *testing.T) {
		subject.Forget(key)
		start := time.Now()
		if statuses, err := subject.Resolve(rev, time.Second); err != nil || statuses != nil {
			t.Fatalf("Resolve = %v, %v", statuses, err)
		}
		<-enqueue
		if took := time.Since(start); took > baseDelay*2 {
			t.Fatal("Forget did not reset the backoff:", took)
		}
	})
}
