package apiserver

import (
	"mime"
	"net/http"
	"runtime"
	"slices"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-dev/skiff/api"
)

// KubernetesVersion is the Kubernetes API version whose conventions the local API follows:
// that of k8s.io/apimachinery in go.mod (a test keeps them together). /version reports it,
// so that kubectl's version-skew check passes.
const KubernetesVersion = "1.37"

func (s *Server) version(w http.ResponseWriter) {
	major, minor, _ := strings.Cut(KubernetesVersion, ".")
	writeJSON(w, http.StatusOK, version.Info{
		Major: major, Minor: minor, GitVersion: "v" + KubernetesVersion + ".0+skiff",
		GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
		BuildDate: "1970-01-01T00:00:00Z",
	})
}

// wantsAggregated reports whether the client accepts aggregated discovery (apidiscovery.k8s.io
// v2), which kubectl and client-go ask for first.
func wantsAggregated(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return true
		}
	}
	return false
}

// groupOrder lists the groups served, in the order discovery reports them: the order of
// api.ServedKinds.
func (s *Server) groupOrder() []string {
	var out []string
	for _, k := range s.kinds {
		if k.Group != "" && !slices.Contains(out, k.Group) {
			out = append(out, k.Group)
		}
	}
	return out
}

func (s *Server) coreVersions(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		s.aggregated(w, func(k *api.Kind) bool { return k.Group == "" })
		return
	}
	writeJSON(w, http.StatusOK, metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
	})
}

func (s *Server) apiGroup(name string) metav1.APIGroup {
	var versions []metav1.GroupVersionForDiscovery
	for _, k := range s.kinds {
		gv := metav1.GroupVersionForDiscovery{GroupVersion: k.APIVersion(), Version: k.Version}
		if k.Group == name && !slices.Contains(versions, gv) {
			versions = append(versions, gv)
		}
	}
	return metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: name, Versions: versions, PreferredVersion: versions[0]}
}

func (s *Server) groups(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		s.aggregated(w, func(k *api.Kind) bool { return k.Group != "" })
		return
	}
	list := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range s.groupOrder() {
		list.Groups = append(list.Groups, s.apiGroup(g))
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) group(w http.ResponseWriter, name string) {
	if !slices.Contains(s.groupOrder(), name) {
		s.fail(w, errPathNotFound())
		return
	}
	writeJSON(w, http.StatusOK, s.apiGroup(name))
}

// verbs are what every kind allows, as for a CRD; a Namespace has no deletecollection.
func verbs(k *api.Kind) []string {
	if k.ClusterScoped && k.Group == "" {
		return []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	}
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

var subresourceVerbs = []string{"get", "patch", "update"}

func (s *Server) resources(w http.ResponseWriter, group, version string) {
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}}
	for _, k := range s.kinds {
		if k.Group != group || k.Version != version {
			continue
		}
		list.GroupVersion = k.APIVersion()
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: k.Plural, SingularName: k.Singular(), Namespaced: !k.ClusterScoped, Kind: k.Kind,
			Verbs: verbs(k), ShortNames: k.ShortNames, Categories: k.Categories,
		})
		if k.StatusSubresource {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: k.Plural + "/status", Namespaced: !k.ClusterScoped, Kind: k.Kind, Verbs: subresourceVerbs,
			})
		}
	}
	if list.GroupVersion == "" {
		s.fail(w, errPathNotFound())
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// aggregated answers aggregated discovery (apidiscovery.k8s.io/v2) for the kinds keep keeps:
// every group, version and resource in one document.
func (s *Server) aggregated(w http.ResponseWriter, keep func(*api.Kind) bool) {
	list := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	index := map[string]int{}
	for _, k := range s.kinds {
		if !keep(k) {
			continue
		}
		i, ok := index[k.Group]
		if !ok {
			i = len(list.Items)
			index[k.Group] = i
			list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: k.Group}})
		}
		g := &list.Items[i]
		vi := slices.IndexFunc(g.Versions, func(v apidiscoveryv2.APIVersionDiscovery) bool { return v.Version == k.Version })
		if vi < 0 {
			g.Versions = append(g.Versions, apidiscoveryv2.APIVersionDiscovery{Version: k.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent})
			vi = len(g.Versions) - 1
		}
		scope := apidiscoveryv2.ScopeNamespace
		if k.ClusterScoped {
			scope = apidiscoveryv2.ScopeCluster
		}
		gvk := &metav1.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
		res := apidiscoveryv2.APIResourceDiscovery{
			Resource: k.Plural, ResponseKind: gvk, Scope: scope, SingularResource: k.Singular(),
			Verbs: verbs(k), ShortNames: k.ShortNames, Categories: k.Categories,
		}
		if k.StatusSubresource {
			res.Subresources = []apidiscoveryv2.APISubresourceDiscovery{{Subresource: "status", ResponseKind: gvk, Verbs: subresourceVerbs}}
		}
		g.Versions[vi].Resources = append(g.Versions[vi].Resources, res)
	}
	w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
	w.Header().Set("Vary", "Accept")
	w.WriteHeader(http.StatusOK)
	writeBody(w, list)
}

// openAPI serves /openapi/v3 (where each group-version's document is) and the documents.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request, rest []string) {
	if len(rest) == 0 || rest[0] != "v3" {
		s.fail(w, errPathNotFound())
		return
	}
	if len(rest) == 1 {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.openapi.Root())
		return
	}
	data, hash, ok := s.openapi.Get(strings.Join(rest[1:], "/"))
	if !ok {
		s.fail(w, errPathNotFound())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Etag", `"`+hash+`"`)
	if r.URL.Query().Get("hash") == hash {
		// A document asked for by its hash never changes, as kube-apiserver tells clients.
		w.Header().Set("Cache-Control", "public, immutable")
	}
	w.Write(data)
}
