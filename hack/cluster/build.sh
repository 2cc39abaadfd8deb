#!/usr/bin/env bash
# Build the test world's binaries from Go modules and cache them outside the checkout.
#
#   hack/cluster/build.sh            build (or reuse) every tool family
#   hack/cluster/build.sh k8s vela   build only these families
#   hack/cluster/build.sh --bindir   print the directory holding every binary (after building)
#   hack/cluster/build.sh rollouts   build the optional family (never built by default)
#   hack/cluster/build.sh --bindir rollouts
#                                    the same directory, with the optional family built and linked
#
# Families (one go.mod each, never joined): k8s, etcd, kwok, vela, kruise (built by default) and
# rollouts (Kruise Rollout, the benchmark's peer: built only when named, it adds ~3 min to a cold
# build that most runs do not need). A built optional family is linked into every --bindir.
# kruise's go.mod/go.sum are derived from the upstream module: its replace block copied verbatim,
# its go.sum seeded from the module's own (some pinned k8s.io versions are unknown to the checksum
# database), then `go get github.com/openkruise/kruise@<version>`.
# Cache key = sha256(go.mod, go.sum, go version, this script's BUILD_REV), so a fresh clone
# reuses the binaries and a changed pin rebuilds only its family.
# Cache root: $VP_CACHE_DIR (default ~/.cache/vela-progressive).
set -euo pipefail

BUILD_REV=3
# kruise-manager is built from a patched copy of the module made at build time (nothing upstream
# is kept in this repository), two literals changed:
# - main.go binds the webhook server to a hard-coded 0.0.0.0; the test world listens on loopback
#   only: 127.0.0.1.
# - pkg/util/discovery retries "kind not found" with backoff (16 s per kind) before skipping a
#   controller whose CRD is missing; the test world installs only a few Kruise CRDs, so the
#   CloneSet/StatefulSet/DaemonSet controllers would start 80 s late (and kruise-manager's
#   readiness 30 s late). The answer "not found" is final here (CRDs are Established before it
#   starts): retry only other errors.
# Bump when kruise_patched_source changes.
KRUISE_PATCH_REV=2
# kruise-rollout (github.com/openkruise/rollouts, family rollouts) is built the same way from a
# patched copy, one literal changed: pkg/webhook/server.go sets the webhook server's Host to a
# hard-coded "0.0.0.0"; the test world listens on loopback only: "127.0.0.1". (Its go.mod has no
# replace block, so hack/cluster/rollouts/go.mod is plain `go get -tool ...@v0.6.2`; not `go mod
# tidy`: a test file of v0.6.2 imports k8s.io/utils/ptr, which its pinned k8s.io/utils lacks, and
# tidy would lift k8s.io/utils to a 2026 version that needs Go 1.26.)
# Bump when rollouts_patched_source changes.
ROLLOUTS_PATCH_REV=1
DEFAULT_FAMILIES=(etcd kwok k8s vela kruise)
OPTIONAL_FAMILIES=(rollouts)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VP_CACHE_DIR:-$HOME/.cache/vela-progressive}
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

K8S_VERSION=$(awk '/k8s.io\/kubernetes v/ {print $2; exit}' "$here/k8s/go.mod")
VELA_VERSION=$(awk '/github.com\/oam-dev\/kubevela v/ {print $2; exit}' "$here/vela/go.mod")

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }

command -v go >/dev/null || die "go is not installed; install Go >= 1.25 (this project was measured with $(echo go1.26))."

key() {
  local fam=$1
  { cat "$here/$fam/go.mod" "$here/$fam/go.sum"; go version; echo "$BUILD_REV"
    if [ "$fam" = kruise ]; then echo "$KRUISE_PATCH_REV"; fi
    if [ "$fam" = rollouts ]; then echo "$ROLLOUTS_PATCH_REV"; fi; } | sha256sum | cut -c1-16
}

outdir() { echo "$cache/bin/$1-$(key "$1")"; }

binaries() {
  case $1 in
    k8s) echo kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    etcd) echo etcd ;;
    kwok) echo kwok ;;
    vela) echo vela-core vela ;;
    kruise) echo kruise-manager ;;
    rollouts) echo kruise-rollout ;;
    *) die "unknown family '$1' (known: k8s etcd kwok vela kruise rollouts)" ;;
  esac
}

k8s_ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local f="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    f+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  echo "$f"
}

kruise_edit() {
  # kruise_edit FILE FROM TO: replace the one line holding the literal FROM (checked first).
  local file=$1 from=$2 to=$3
  [ "$(grep -cF -- "$from" "$file")" = 1 ] || die "$file no longer has '$from' once; update $0"
  FROM=$from TO=$to perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$file"
}

kruise_patched_source() {
  # A copy of the module with the literals changed, used through a temporary modfile's
  # replace (go build refuses overlays of files in the module cache).
  local tmp=$1 dir
  dir=$(cd "$here/kruise" && go list -m -f '{{.Dir}}' github.com/openkruise/kruise)
  cp -r "$dir" "$tmp/kruise-src" && chmod -R u+w "$tmp/kruise-src"
  kruise_edit "$tmp/kruise-src/main.go" 'Host:    "0.0.0.0",' 'Host:    "127.0.0.1",'
  kruise_edit "$tmp/kruise-src/pkg/util/discovery/discovery.go" \
    'retry.OnError(backOff, func(err error) bool { return true },' \
    'retry.OnError(backOff, func(err error) bool { return err != errKindNotFound },'
  cp "$here/kruise/go.mod" "$here/kruise/go.sum" "$tmp/"
  go mod edit -modfile="$tmp/go.mod" -replace "github.com/openkruise/kruise=$tmp/kruise-src"
}

rollouts_patched_source() {
  # Like kruise_patched_source: a copy of github.com/openkruise/rollouts with the webhook host on
  # loopback, used through a temporary modfile's replace.
  local tmp=$1 dir
  dir=$(cd "$here/rollouts" && go list -m -f '{{.Dir}}' github.com/openkruise/rollouts)
  [ -n "$dir" ] || die "rollouts: github.com/openkruise/rollouts is not in the module cache (go mod download failed?)"
  cp -r "$dir" "$tmp/rollouts-src" && chmod -R u+w "$tmp/rollouts-src"
  kruise_edit "$tmp/rollouts-src/pkg/webhook/server.go" 'server.Host = "0.0.0.0"' 'server.Host = "127.0.0.1"'
  cp "$here/rollouts/go.mod" "$here/rollouts/go.sum" "$tmp/"
  go mod edit -modfile="$tmp/go.mod" -replace "github.com/openkruise/rollouts=$tmp/rollouts-src"
}

build_family() {
  local fam=$1 out tmp
  out=$(outdir "$fam")
  local missing=0
  for b in $(binaries "$fam"); do [ -x "$out/$b" ] || missing=1; done
  if [ $missing = 0 ]; then log "$fam: cached in $out"; return; fi
  tmp="$out.tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
  log "$fam: downloading modules (go mod download) ..."
  (cd "$here/$fam" && go mod download) || die "$fam: 'go mod download' failed: is the Go module proxy reachable? (GOPROXY=$(go env GOPROXY))"
  local start=$SECONDS
  log "$fam: compiling $(binaries "$fam") (cold builds take minutes; progress below) ..."
  (
    cd "$here/$fam"
    case $fam in
      k8s)
        go build -trimpath -tags notest -ldflags "$(k8s_ldflags)" -o "$tmp/" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
          k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ;;
      etcd) go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 ;;
      kwok) go build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok ;;
      kruise)
        kruise_patched_source "$tmp"
        go build -trimpath -modfile="$tmp/go.mod" -ldflags "-s -w" -o "$tmp/kruise-manager" \
          github.com/openkruise/kruise
        rm -rf "$tmp/kruise-src" "$tmp/go.mod" "$tmp/go.sum" ;;
      rollouts)
        rollouts_patched_source "$tmp"
        go build -trimpath -modfile="$tmp/go.mod" -ldflags "-s -w" -o "$tmp/kruise-rollout" \
          github.com/openkruise/rollouts
        rm -rf "$tmp/rollouts-src" "$tmp/go.mod" "$tmp/go.sum" ;;
      vela)
        local vf="-s -w -X github.com/oam-dev/kubevela/version.VelaVersion=$VELA_VERSION -X github.com/oam-dev/kubevela/version.GitRevision=$VELA_VERSION"
        go build -trimpath -ldflags "$vf" -o "$tmp/vela-core" github.com/oam-dev/kubevela/cmd/core
        go build -trimpath -ldflags "$vf" -o "$tmp/vela" github.com/oam-dev/kubevela/references/cmd/cli ;;
    esac
  ) &
  local pid=$! last=$SECONDS
  while kill -0 $pid 2>/dev/null; do
    sleep 1
    if [ $((SECONDS - last)) -ge 30 ] && kill -0 $pid 2>/dev/null; then
      last=$SECONDS; log "$fam: still compiling ($((SECONDS - start))s elapsed)"
    fi
  done
  wait $pid || die "$fam: go build failed (see the compiler output above); fix it, then run: $0 $fam"
  rm -rf "$out"; mv "$tmp" "$out"
  log "$fam: built in $((SECONDS - start))s -> $out"
}

bindir() {
  # One directory of symlinks per combination of the default families' keys (so a world's
  # bindir does not change when an optional family is built).
  local combo=""
  for f in k8s etcd kwok vela kruise; do combo+="$(key "$f")"; done
  local dir="$cache/bindir-$(echo "$combo" | sha256sum | cut -c1-16)"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir.tmp.$$"
    for f in k8s etcd kwok vela kruise; do
      for b in $(binaries "$f"); do ln -sf "$(outdir "$f")/$b" "$dir.tmp.$$/$b"; done
    done
    mv "$dir.tmp.$$" "$dir" 2>/dev/null || rm -rf "$dir.tmp.$$"
  fi
  # Optional families: linked (or relinked to the current key) whenever they are built.
  for f in "${OPTIONAL_FAMILIES[@]}"; do
    for b in $(binaries "$f"); do
      local target; target="$(outdir "$f")/$b"
      if [ -x "$target" ] && [ "$(readlink "$dir/$b" 2>/dev/null)" != "$target" ]; then
        ln -sfn "$target" "$dir/$b.tmp.$$" && mv -fT "$dir/$b.tmp.$$" "$dir/$b"
      fi
    done
  done
  echo "$dir"
}

if [ "${1:-}" = "--bindir" ]; then
  shift
  for f in "${DEFAULT_FAMILIES[@]}" "$@"; do build_family "$f"; done
  bindir
  exit 0
fi
families=("$@"); [ ${#families[@]} -gt 0 ] || families=("${DEFAULT_FAMILIES[@]}")
for f in "${families[@]}"; do build_family "$f"; done
