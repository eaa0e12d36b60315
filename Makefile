# Skiff: everything a newcomer needs is `make run` and `make test`.
GO      ?= go
BIN     := bin/skiff
DATA    ?= .skiff
PKGS    := ./...

.PHONY: all build run test test-short lint vet fmt bench clean wasm

all: build

build: ## build the one binary
	$(GO) build -o $(BIN) ./cmd/skiff

run: build ## start `skiff up` and apply examples/hello.yaml; then: curl -H 'Host: hello.default.localhost' http://127.0.0.1:8080/
	./$(BIN) up --data-dir $(DATA) -f examples/hello.yaml

wasm: ## build every proxy-wasm filter under wasm-filters/ to bin/wasm/<name>.wasm (standard Go, wasip1)
	$(GO) run ./wasm-filters/wasmbuild/cmd/wasmbuild -out bin/wasm

test: vet ## every test, with the race detector
	$(GO) test -race -timeout 14m -count=1 $(PKGS)

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
