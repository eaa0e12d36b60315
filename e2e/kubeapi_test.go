package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controlplane"
)

// informerLog records what an informer's handlers see, as "add a", "update a v=1", "delete b".
type informerLog struct {
	mu     sync.Mutex
	events []string
}

func (l *informerLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *informerLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func describe(obj any) string {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Sprintf("%T", obj) // a DeletedFinalStateUnknown would mean a relist, not a watch
	}
	v, _, _ := unstructured.NestedString(u.Object, "data", "v")
	return u.GetName() + " v=" + v
}

// A client-go informer against skiff up sees adds, updates and deletes in order, and keeps
// seeing them across a restart of skiff up: it resumes its watch from the last
// resourceVersion it saw (kept in the store's history), so the changes made right after the
// restart arrive as the same events, with the objects themselves (not a relist's guesses).
func TestInformerAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sameAddr := func(cfg *controlplane.Config) { cfg.APIAddress = addr }
	s := startSkiff(t, dir, sameAddr)

	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	dyn := dynamic.NewForConfigOrDie(&rest.Config{Host: "http://" + addr})
	cms := dyn.Resource(gvr).Namespace("default")
	ctx := context.Background()
	cm := func(name, v string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name}, "data": map[string]any{"v": v}}}
	}
	update := func(name, v string) {
		t.Helper()
		cur, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Object["data"] = map[string]any{"v": v}
		if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cms.Create(ctx, cm("a", "0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var log informerLog
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, "default", nil)
	inf := factory.ForResource(gvr).Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { log.add("add " + describe(obj)) },
		UpdateFunc: func(old, obj any) {
			if old.(*unstructured.Unstructured).GetResourceVersion() != obj.(*unstructured.Unstructured).GetResourceVersion() {
				log.add("update " + describe(obj))
			}
		},
		DeleteFunc: func(obj any) { log.add("delete " + describe(obj)) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	update("a", "1")
	if _, err := cms.Create(ctx, cm("b", "0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := []string{"add a v=0", "update a v=1", "add b v=0"}
	eventually(t, 10*time.Second, "the informer's events before the restart", func() bool { return len(log.snapshot()) == len(before) })

	s.stop()
	s = startSkiff(t, dir, sameAddr)
	update("a", "2")
	if err := cms.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, cm("c", "0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A last change marks the end: events arrive in order, so anything else (a relist's) comes
	// before it.
	if _, err := cms.Create(ctx, cm("z", "end"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := append(before, "update a v=2", "delete b v=0", "add c v=0", "add z v=end")
	eventually(t, 30*time.Second, "the informer's events after the restart", func() bool {
		got := log.snapshot()
		return len(got) > 0 && got[len(got)-1] == "add z v=end"
	})
	if got := log.snapshot(); strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("informer saw:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
