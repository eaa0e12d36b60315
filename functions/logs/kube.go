package logs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// Kube prints the logs of a function deployed in a cluster: its pods' user-container output.
type Kube struct {
	Client kubernetes.Interface
}

// Stream writes the logs of the function's pods to w, each line as "<pod> <line>", since
// since (zero: all). With follow it streams the pods that run now and those that start later,
// until ctx ends, as func's GetPodLogsBySelector does.
func (k *Kube) Stream(ctx context.Context, w io.Writer, name, ns string, since time.Time, follow bool) error {
	selector := servingv1.ServiceLabel + "=" + name
	out := &lockedWriter{w: w}
	if !follow {
		pods, err := k.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return fmt.Errorf("listing the function's pods: %w", err)
		}
		if len(pods.Items) == 0 {
			return fmt.Errorf("function %s has no pods in namespace %s (scaled to zero, or not deployed)", name, ns)
		}
		for _, p := range pods.Items {
			if err := k.copy(ctx, out, p, since, false); err != nil {
				return err
			}
		}
		return nil
	}
	wa, err := k.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return fmt.Errorf("watching the function's pods: %w", err)
	}
	defer wa.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	streaming := map[string]bool{}
	var mu sync.Mutex
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-wa.ResultChan():
			if !ok {
				return nil
			}
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || !started(p) {
				continue
			}
			mu.Lock()
			if streaming[p.Name] {
				mu.Unlock()
				continue
			}
			streaming[p.Name] = true
			mu.Unlock()
			pod := *p
			wg.Go(func() {
				if err := k.copy(ctx, out, pod, since, true); err != nil && ctx.Err() == nil {
					fmt.Fprintf(out, "%s: %v\n", pod.Name, err)
				}
				mu.Lock()
				delete(streaming, pod.Name)
				mu.Unlock()
			})
		}
	}
}

// started reports whether the pod's serving container has run, so that it has logs.
func started(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == container(p) {
			return s.State.Running != nil || s.State.Terminated != nil
		}
	}
	return false
}

// container is the pod's serving container: Knative's user-container, else the first.
func container(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == servingv1.DefaultUserContainerName {
			return c.Name
		}
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Name
	}
	return ""
}

func (k *Kube) copy(ctx context.Context, w io.Writer, p corev1.Pod, since time.Time, follow bool) error {
	opts := &corev1.PodLogOptions{Container: container(&p), Follow: follow}
	if !since.IsZero() {
		t := metav1.NewTime(since)
		opts.SinceTime = &t
	}
	r, err := k.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts).Stream(ctx)
	if err != nil {
		return fmt.Errorf("reading the logs of pod %s: %w", p.Name, err)
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if _, err := fmt.Fprintln(w, p.Name+" "+sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// lockedWriter serializes whole lines from several pods' streams.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
