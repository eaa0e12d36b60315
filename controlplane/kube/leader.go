package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// LeaderLabel is the label the leading replica puts on its own Pod (value "true") once it
// serves xDS, the activation feed and the wasm modules with its reconcilers synced; the
// skiff-controlplane Service selects it, so Envoy and the activators reach the leader while
// every replica is Ready (each serves the admission webhooks). A replica removes it from its
// Pod when it stops leading and when it starts (a restarted container must not keep a stale
// one), and a new leader removes it from every other Pod.
const LeaderLabel = "skiff.dev/leader"

// leaderPod labels this replica's Pod; a zero name (no POD_NAME) does nothing.
type leaderPod struct {
	kc        kubernetes.Interface
	namespace string
	name      string
	log       *slog.Logger
}

func (p *leaderPod) enabled() bool { return p.name != "" && p.namespace != "" }

// patch sets (value "true") or removes (value nil) LeaderLabel on pod.
func (p *leaderPod) patch(ctx context.Context, pod string, value any) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{LeaderLabel: value}}})
	if err != nil {
		return err
	}
	_, err = p.kc.CoreV1().Pods(p.namespace).Patch(ctx, pod, types.MergePatchType, body, metav1.PatchOptions{})
	return err
}

// mark labels this Pod as the leader's and unlabels every other Pod that still has the label
// (a previous leader that died without removing it).
func (p *leaderPod) mark(ctx context.Context) error {
	if !p.enabled() {
		return nil
	}
	if err := p.patch(ctx, p.name, "true"); err != nil {
		return fmt.Errorf("label pod %s/%s %s=true: %w", p.namespace, p.name, LeaderLabel, err)
	}
	pods, err := p.kc.CoreV1().Pods(p.namespace).List(ctx, metav1.ListOptions{LabelSelector: LeaderLabel})
	if err != nil {
		return fmt.Errorf("list pods labelled %s in %s: %w", LeaderLabel, p.namespace, err)
	}
	for _, pod := range pods.Items {
		if pod.Name == p.name {
			continue
		}
		if err := p.patch(ctx, pod.Name, nil); err != nil {
			return fmt.Errorf("remove %s from pod %s/%s: %w", LeaderLabel, p.namespace, pod.Name, err)
		}
		p.log.Info("removed a previous leader's label", "pod", pod.Name)
	}
	return nil
}

// unmark removes the label from this Pod. It runs when leadership ends (ctx may be done by
// then), so it uses a context of its own, bounded.
func (p *leaderPod) unmark() error {
	if !p.enabled() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.patch(ctx, p.name, nil); err != nil {
		return fmt.Errorf("remove %s from pod %s/%s: %w", LeaderLabel, p.namespace, p.name, err)
	}
	return nil
}

// markWhenSynced labels the Pod once synced is closed (the reconcilers have programmed the
// proxy with everything that existed), so proxies are handed to a leader with the whole
// configuration, and removes the label when ctx (the leadership) ends. It retries a failed
// label until ctx ends: without it no proxy reaches this leader.
func (p *leaderPod) markWhenSynced(ctx context.Context, synced <-chan struct{}) {
	if !p.enabled() {
		return
	}
	defer func() {
		if err := p.unmark(); err != nil {
			p.log.Error("leadership ended", "err", err)
		}
	}()
	select {
	case <-ctx.Done():
		return
	case <-synced:
	}
	for {
		err := p.mark(ctx)
		if err == nil {
			p.log.Info("pod labelled as the leader's", "pod", p.name, "label", LeaderLabel)
			break
		}
		p.log.Error("leading", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	<-ctx.Done()
}

// readyz answers the kubelet's readiness probe: every replica is Ready once it serves its
// role whether leading or not, i.e. once a stale leader label is gone and the admission
// webhooks (when on) have their certificate. Which replica leads is said in the body and by
// LeaderLabel, never by readiness: a Deployment of several replicas must become Available
// for rollouts to finish.
func (c *Controller) readyz(w http.ResponseWriter, _ *http.Request) {
	if !c.started.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if h := c.hook.Load(); h != nil && h.CABundle() == nil {
		http.Error(w, "admission webhooks: no certificate yet", http.StatusServiceUnavailable)
		return
	}
	if c.leader.Load() {
		_, _ = w.Write([]byte("ok: leading"))
		return
	}
	_, _ = w.Write([]byte("ok: following"))
}
