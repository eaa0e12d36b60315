#!/usr/bin/env bash
# make test: go vet and every package's tests with -race while `make kube-bins` builds in the background
# (niced, so the tests keep the CPU), then the Kubernetes integration tests if the binaries
# built. Usage: test-all.sh GO KUBE_BIN_DIR
set -uo pipefail
GO=${1:-go}
KUBE_BIN=${2:-bin/kube}
cd "$(dirname "$0")/../../.."
mkdir -p bin
log=bin/kube-bins.log
start=$(date +%s)
# Its own process group (job control), so that it can be stopped whole.
set -m
nice -n 19 make --no-print-directory kube-bins GO="$GO" >"$log" 2>&1 &
build=$!
set +m
# Whatever happens, do not leave the build running.
trap 'kill -- -"$build" 2>/dev/null' EXIT

"$GO" vet ./... || exit 1
pkgs=$("$GO" list ./... | grep -v '/e2e/kube')
"$GO" test -race -timeout 14m -count=1 $pkgs
tests=$?
echo "make test: packages other than e2e/kube took $(( $(date +%s) - start ))s (exit $tests)"

wait "$build"
built=$?
trap - EXIT
if [ "$built" -ne 0 ]; then
  echo "make test: the Kubernetes binaries did not build (make kube-bins exit $built; log: $log):" >&2
  tail -n 15 "$log" >&2
  echo "make test: SKIPPED the Kubernetes integration tests (e2e/kube)" >&2
  exit "$tests"
fi
echo "make test: kube binaries ready after $(( $(date +%s) - start ))s"
SKIFF_KUBE_BIN="$PWD/$KUBE_BIN" "$GO" test -race -timeout 10m -count=1 ./e2e/kube/...
k8s=$?
echo "make test: total $(( $(date +%s) - start ))s (other packages exit $tests, e2e/kube exit $k8s)"
[ "$tests" -eq 0 ] && [ "$k8s" -eq 0 ]
