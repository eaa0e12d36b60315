package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestParse(t *testing.T) {
	p, err := Parse(nil, "f")
	if err != nil || p.Kind != TCP || p.Period != time.Second || p.Failures != 3 || p.Successes != 1 {
		t.Errorf("default: %+v, %v; want Knative's TCP default", p, err)
	}
	p, err = Parse(&corev1.Probe{PeriodSeconds: 2, FailureThreshold: 5, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "healthz", Port: intstr.FromInt32(8080), HTTPHeaders: []corev1.HTTPHeader{{Name: "Host", Value: "h"}, {Name: "X", Value: "y"}}}}}, "f")
	if err != nil || p.Kind != HTTP || p.Path != "/healthz" || p.Host != "h" || len(p.Headers) != 1 || p.Period != 2*time.Second || p.Failures != 5 {
		t.Errorf("httpGet: %+v, %v", p, err)
	}
	if _, err := Parse(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 1}}}, "spec.x"); err == nil || !strings.Contains(err.Error(), "spec.x.grpc") {
		t.Errorf("grpc: %v, want an error naming the field", err)
	}
	if _, err := Parse(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}}, "spec.x"); err == nil || !strings.Contains(err.Error(), "spec.x.exec.command") {
		t.Errorf("empty exec: %v", err)
	}
}

// The probe goes to the instance's port whatever port the spec names, with the Host header it
// sets; Loop reports ready, then unready after failureThreshold failures.
func TestCheckAndLoop(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	var host atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	spec, _ := Parse(&corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "/", Port: intstr.FromInt32(1), HTTPHeaders: []corev1.HTTPHeader{{Name: "Host", Value: "probe.example"}}}}}, "f")
	pr := New(spec, "127.0.0.1", port, nil)
	defer pr.Close()
	if err := pr.Check(context.Background()); err != nil || host.Load() != "probe.example" {
		t.Fatalf("Check: %v, Host %v", err, host.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan Result, 4)
	go pr.Loop(ctx, true, func(r Result, _ error) { results <- r })
	if r := <-results; r != Ready {
		t.Fatalf("first result %v, want Ready", r)
	}
	healthy.Store(false)
	select {
	case r := <-results:
		if r != Unready {
			t.Fatalf("after failing: %v, want Unready", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Unready after the probe started failing")
	}
	exec := New(Spec{Kind: Exec, Command: []string{"x"}, Timeout: time.Second}, "127.0.0.1", port, func(context.Context, []string) error {
		return errors.New("exit 1")
	})
	if err := exec.Check(context.Background()); err == nil {
		t.Error("a failing exec probe passed")
	}
}
