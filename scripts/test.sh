#!/usr/bin/env bash
# Runs every check: formatting, clippy, the Rust tests of every crate, then the end-to-end tests
# (pytest, driving the real moonlight-common-c through moonlight-python against `hati serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# The runner tests skip (printing why) without Docker or PulseAudio, and the compositor tests
# without weston-simple-shm, Xwayland, xev or xmessage (Debian's weston, xwayland, x11-utils);
# here they must not. Under CI=true every e2e skip fails too (tests/e2e/conftest.py).
export HATI_REQUIRE_DOCKER=1 HATI_REQUIRE_PULSEAUDIO=1 HATI_REQUIRE_WAYLAND=1

step() { printf '\n== %s (at %d s)\n' "$*" "$SECONDS"; }

step "module cycles in the server crate (the check proves it can fail first)"
python3 scripts/check_module_cycles.py --self-test
python3 scripts/check_module_cycles.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "release binary for the container image and the Debian package"
# Its own cargo target dir, kept between runs (a clean checkout rebuilds only Hati's crates when
# the dependencies did not change); the image's Debian stages are cached as Docker images.
cache=${HATI_BUILD_CACHE:-/var/cache/hati-build}
if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
  export HATI_RELEASE_TARGET_DIR=${HATI_RELEASE_TARGET_DIR:-$cache/target}
fi
scripts/image.sh binary

step "end-to-end tests (real Moonlight client library)"
cargo build --bin hati
cargo build -p hati-compositor --bin hati-test-client
HATI_BIN="$PWD/target/debug/hati" .venv/bin/python -m pytest -v -rs --durations=12 tests/e2e
step "done"
