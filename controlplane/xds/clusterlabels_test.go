package xds

import "testing"

// A revision's cluster names its Service and Configuration in its metadata, for the
// proxies' request metrics; without them the metadata is what it was.
func TestTranslateClusterRevisionLabels(t *testing.T) {
	c, err := TranslateCluster(Cluster{Namespace: "default", Revision: "hello-00001", Service: "hello", Configuration: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	f := c.GetMetadata().GetFilterMetadata()[MetadataNamespace].GetFields()
	for k, want := range map[string]string{"namespace": "default", "revision": "hello-00001", "service": "hello", "configuration": "hello"} {
		if got := f[k].GetStringValue(); got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	c, err = TranslateCluster(Cluster{Namespace: "default", Revision: "bare"})
	if err != nil {
		t.Fatal(err)
	}
	if f := c.GetMetadata().GetFilterMetadata()[MetadataNamespace].GetFields(); len(f) != 2 {
		t.Errorf("metadata %v, want namespace and revision only", f)
	}
}
