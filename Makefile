# Skiff: everything a newcomer needs is `make run` and `make test`.
GO      ?= go
BIN     := bin/skiff
DATA    ?= .skiff
PKGS    := ./...

.PHONY: all build run test crds-check test-short lint vet fmt bench clean wasm kube-bins crds test-k8s python-frameworks runc prometheus

all: build

build: ## build the one binary
	$(GO) build -o $(BIN) ./cmd/skiff

run: build ## start `skiff up` and apply examples/hello.yaml and examples/broker.yaml; then: curl -H 'Host: hello.default.localhost' http://127.0.0.1:8080/
	./$(BIN) up --data-dir $(DATA) -f examples/hello.yaml -f examples/broker.yaml

wasm: ## build every proxy-wasm filter under wasm-filters/ to bin/wasm/<name>.wasm (standard Go, wasip1)
	$(GO) run ./wasm-filters/wasmbuild/cmd/wasmbuild -out bin/wasm

# `make test` builds the Kubernetes binaries (make kube-bins, ~9 min cold on 2 cores, cached in
# bin/kube) in the background at low priority while go vet and every other package's tests run
# (measured on 2 cores: a fresh clone with an empty Go build cache 15m22s, CPU-bound at
# 26 CPU-minutes, the kube build finishing at 12m36s; with a warm build cache 4m32s), then runs
# the Kubernetes integration tests (e2e/kube) if the build succeeded. A failed build does not fail
# `make test`: it says so, points at its log, and the e2e/kube tests are skipped (they skip on
# their own without binaries too); a failing test fails it.
test: python-frameworks runc prometheus crds-check ## go vet, then every test with the race detector (e2e/kube too when the kube binaries build)
	@bash e2e/kube/tools/test-all.sh "$(GO)" "$(KUBE_BIN)"

# The Python Flask and FastAPI templates run with the distribution's frameworks (PyPI is out of
# reach). As root on Debian this installs them when missing (~20s); anywhere else it says why
# not, and the tests that need them skip with the same message. It never fails the build.
python-frameworks: ## install Debian's python3-flask, python3-fastapi and python3-uvicorn if missing (best effort)
	@if /usr/bin/python3 -c 'import flask, fastapi, uvicorn' 2>/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing python3-flask python3-fastapi python3-uvicorn (the Flask and FastAPI function templates)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-flask python3-fastapi python3-uvicorn >/dev/null 2>&1 \
			|| echo "could not install them: the Flask and FastAPI function tests will skip"; \
	else echo "python3-flask/fastapi/uvicorn missing and not installable here (needs root and apt-get): the Flask and FastAPI function tests will skip"; fi

# The container-image tests (runtime/oci, e2e TestImage*) need runc; as root, `make test` installs
# Debian's when it is missing. Without it (not root, no package) those tests skip, saying why.
runc: ## install runc from the distribution when missing (as root)
	@command -v runc >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" != 0 ]; then echo "runc is missing and this is not root: container image tests will skip"; exit 0; fi; \
	if (apt-get install -y runc >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y runc >/dev/null 2>&1)); \
	then echo "installed $$(runc --version | head -1)"; else echo "could not install runc: container image tests will skip"; fi

# The Prometheus end-to-end test (e2e TestPrometheusScrapesSkiffUp) runs Debian's prometheus
# against `skiff up`; as root, `make test` installs it when missing. Without it the test skips,
# saying why.
prometheus: ## install Debian's prometheus when missing (as root)
	@command -v prometheus >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" != 0 ]; then echo "prometheus is missing and this is not root: the Prometheus scrape test will skip"; exit 0; fi; \
	if (DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1)); \
	then echo "installed $$(prometheus --version 2>&1 | head -1)"; else echo "could not install prometheus: the Prometheus scrape test will skip"; fi

test-short: ## unit tests only, no end-to-end runs
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

lint: vet ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

bench: build ## benchmarks; results go in bench/RESULTS.md
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench/...

clean:
	rm -rf bin $(DATA)

KUBE_BIN := bin/kube

kube-bins: $(KUBE_BIN)/kube-apiserver $(KUBE_BIN)/kube-controller-manager $(KUBE_BIN)/etcd $(KUBE_BIN)/kubectl ## build kube-apiserver, kube-controller-manager, etcd and kubectl from the module proxy (cached in bin/kube)

$(KUBE_BIN)/kube-apiserver $(KUBE_BIN)/kube-controller-manager:
	mkdir -p $(KUBE_BIN)
	cd e2e/kube/tools/kubebins && $(GO) build -trimpath -o $(CURDIR)/$(KUBE_BIN)/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager

# kubectl, for the tests that drive `skiff up`'s API with the real client (e2e/kube/kubectl_test.go).
$(KUBE_BIN)/kubectl:
	mkdir -p $(KUBE_BIN)
	cd e2e/kube/tools/kubebins && $(GO) build -trimpath -ldflags '-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37' -o $(CURDIR)/$(KUBE_BIN)/kubectl k8s.io/kubernetes/cmd/kubectl

$(KUBE_BIN)/etcd:
	mkdir -p $(KUBE_BIN)
	cd e2e/kube/tools/etcd && $(GO) build -trimpath -o $(CURDIR)/$(KUBE_BIN)/etcd .

crds: ## regenerate deploy/crds from api/ with controller-gen (go.mod and go.sum are restored afterwards)
	cp go.mod /tmp/skiff-crds-go.mod && cp go.sum /tmp/skiff-crds-go.sum
	GOFLAGS=-mod=mod $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 crd:allowDangerousTypes=true,maxDescLen=0 paths=./api/... output:crd:dir=deploy/crds && $(GO) run ./deploy/crds/fixup deploy/crds; rc=$$?; cp /tmp/skiff-crds-go.mod go.mod; cp /tmp/skiff-crds-go.sum go.sum; exit $$rc

test-k8s: kube-bins ## integration tests against a real kube-apiserver + etcd on loopback
	SKIFF_KUBE_BIN=$(CURDIR)/$(KUBE_BIN) $(GO) test -race -count=1 -timeout 10m ./e2e/kube/...

# The CRDs under deploy/crds are generated from api/; this regenerates them into a scratch
# directory and fails when the checked-in ones differ (run `make crds` to update them). When
# controller-gen cannot be fetched it says so and passes: the drift check needs the module proxy.
crds-check: ## fail when deploy/crds is not what `make crds` generates from api/
	@tmp=$$(mktemp -d); cp go.mod $$tmp/go.mod.keep && cp go.sum $$tmp/go.sum.keep; \
	if GOFLAGS=-mod=mod $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 crd:allowDangerousTypes=true,maxDescLen=0 paths=./api/... output:crd:dir=$$tmp/crds >$$tmp/log 2>&1 \
		&& $(GO) run ./deploy/crds/fixup $$tmp/crds >>$$tmp/log 2>&1; then gen=ok; else gen=failed; fi; \
	cp $$tmp/go.mod.keep go.mod; cp $$tmp/go.sum.keep go.sum; \
	if [ $$gen = failed ]; then echo "crds-check: could not run controller-gen, drift not checked:"; tail -3 $$tmp/log; rm -rf $$tmp; exit 0; fi; \
	if diff -r -u -x '*.go' -x fixup deploy/crds $$tmp/crds >$$tmp/diff; then echo "crds-check: deploy/crds is current"; rm -rf $$tmp; \
	else head -40 $$tmp/diff; echo "crds-check: deploy/crds differs from api/; run make crds"; rm -rf $$tmp; exit 1; fi
