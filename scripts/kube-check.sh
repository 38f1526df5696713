#!/usr/bin/env bash
# Checks deploy/kubernetes offline (no cluster needed, docs/many-machines.md#kubernetes):
#   1. renders every overlay in deploy/kubernetes/overlays, and a few more combinations of the
#      components, with `kubectl kustomize`;
#   2. validates every rendered object against the Kubernetes API schemas of the versions in
#      KUBE_VERSIONS (default: 1.35.0 and 1.37.0, the oldest and newest minor releases still
#      supported at the end of 2026) with kubernetes-validate --strict (unknown fields fail),
#      from PyPI, installed into .venv when missing (its schemas are bundled: nothing is
#      downloaded while checking);
#   3. checks the repository's own rules (scripts/kube-run.py --lint: config.toml is TOML and,
#      when HATI_BIN or target/debug/hati exists, passes `hati config check`; the relay
#      LoadBalancer lists every front port; probes, resources, no token, IfNotPresent);
#   4. translates every rendered overlay into docker commands (scripts/kube-run.py --print), so
#      what kube-run.py refuses is found here too.
# Exits non-zero, saying what failed, on the first overlay that fails a step.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSIONS=${KUBE_VERSIONS:-"1.35.0 1.37.0"}
VALIDATE_VERSION=1.37.0
ROOT=deploy/kubernetes

fail() { echo "kube-check: FAILED: $*" >&2; exit 1; }

command -v kubectl >/dev/null || fail "kubectl is missing (Debian: apt-get install kubernetes-client, or the kubectl package)"
if [ ! -x .venv/bin/kubernetes-validate ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv || fail "cannot create .venv (python3-venv)"
  echo "kube-check: installing kubernetes-validate==$VALIDATE_VERSION into .venv" >&2
  .venv/bin/pip install -q "kubernetes-validate==$VALIDATE_VERSION" || fail "pip install kubernetes-validate failed"
fi
.venv/bin/python -c "import yaml" 2>/dev/null || .venv/bin/pip install -q pyyaml || fail "pip install pyyaml failed"
if [ -z "${HATI_BIN:-}" ] && [ -x target/debug/hati ]; then
  export HATI_BIN=$PWD/target/debug/hati
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Combinations no overlay here holds, to prove the components compose: dnat with GPUs, and
# Docker apps.
combo() {
  local name=$1 dir up; shift
  dir="$work/combos/$name"
  mkdir -p "$dir"
  # kustomize takes relative paths only.
  up=$(realpath -m --relative-to="$dir" "$PWD/$ROOT")
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [$up/base]"
    echo "components:"
    for component in "$@"; do echo "  - $up/components/$component"; done
  } >"$dir/kustomization.yaml"
  echo "$work/combos/$name"
}

targets=()
for overlay in "$ROOT"/overlays/*/; do
  targets+=("${overlay%/}")
done
targets+=("$(combo dnat+generic-device-plugin+dri+docker-apps dnat generic-device-plugin dri docker-apps)")
targets+=("$(combo dnat+nvidia dnat generic-device-plugin nvidia)")
targets+=("$(combo relay+intel+docker-apps relay generic-device-plugin intel docker-apps)")

for target in "${targets[@]}"; do
  name=$(basename "$target")
  rendered="$work/$name.yaml"
  if ! kubectl kustomize "$target" >"$rendered" 2>"$work/err"; then
    cat "$work/err" >&2
    fail "$name: kubectl kustomize $target"
  fi
  count=$(grep -c '^kind:' "$rendered" || true)
  for version in $KUBE_VERSIONS; do
    if ! .venv/bin/kubernetes-validate --strict --quiet -k "$version" "$rendered" >"$work/out" 2>&1; then
      cat "$work/out" >&2
      fail "$name: the rendered objects do not validate against Kubernetes $version (strict)"
    fi
    if grep -q '^ERROR\|^WARN' "$work/out"; then
      cat "$work/out" >&2
      fail "$name: kubernetes-validate warned against Kubernetes $version"
    fi
  done
  if ! .venv/bin/python scripts/kube-run.py --lint "$rendered"; then
    fail "$name: the repository's rules (scripts/kube-run.py --lint, above)"
  fi
  if ! .venv/bin/python scripts/kube-run.py --print "$rendered" >"$work/print" 2>"$work/err"; then
    cat "$work/err" >&2
    fail "$name: scripts/kube-run.py --print cannot translate it"
  fi
  echo "kube-check: $name: $count objects render, validate (strict, Kubernetes ${KUBE_VERSIONS// /, }), pass the lint and translate"
done
echo "kube-check: all ${#targets[@]} passed"
