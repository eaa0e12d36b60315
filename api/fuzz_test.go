package api

import (
	"context"
	"testing"

	"github.com/skiff-dev/skiff/api/config"
)

// FuzzAdmit: any document of any kind Skiff serves is decoded and admitted (defaulted and
// validated) without panicking; the local API and the webhooks run this on every write.
func FuzzAdmit(f *testing.F) {
	f.Add(0, []byte("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: a}\nspec:\n  template:\n    metadata:\n      annotations: {autoscaling.knative.dev/min-scale: '2'}\n    spec:\n      containers: [{image: x, ports: [{containerPort: 8080}]}]\n  traffic: [{latestRevision: true, percent: 100, tag: t}]\n"))
	f.Add(1, []byte(`{"metadata":{"name":"t"},"spec":{"broker":"b","filters":[{"any":[{"cesql":"type = 'a'"},{"not":{"exact":{"type":"x"}}}]}],"subscriber":{"uri":"http://x"},"delivery":{"retry":1,"backoffDelay":"PT1S"}}}`))
	f.Add(2, []byte(`{"metadata":{"name":"p"},"spec":{"schedule":"*/1 * * * *","timezone":"Europe/Madrid","sink":{"ref":{"apiVersion":"v1","kind":"Service","name":"s"}}}}`))
	f.Add(3, []byte(`{"metadata":{"name":"s"},"spec":{"steps":[{"uri":"http://a"}],"channelTemplate":{"apiVersion":"messaging.knative.dev/v1","kind":"InMemoryChannel"}}}`))
	kinds := Kinds()
	f.Fuzz(func(t *testing.T, k int, doc []byte) {
		if k < 0 {
			k = -k
		}
		kind := kinds[k%len(kinds)]
		obj := kind.New()
		if _, err := Decode(doc, obj); err != nil {
			return
		}
		obj.SetNamespace("default")
		if obj.GetName() == "" {
			obj.SetName("x")
		}
		ctx := config.ToContext(context.Background(), config.Default())
		_ = Admit(ctx, obj, nil)
		old := kind.New()
		_, _ = Decode(doc, old)
		_ = Admit(ctx, obj, old)
	})
}
