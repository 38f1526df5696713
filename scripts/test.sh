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

# The container image's Debian stages (base, and the run-time packages installed on it) and the
# packages the package test installs need no binary: made in the background while the Rust steps
# compile (scripts/image.sh prefetch; nice reaches debootstrap, not apt in its container, which
# competes as one ordinary process). A failure here only means those tests make them for
# themselves (and report any real problem).
prefetch_log=$(mktemp "${TMPDIR:-/tmp}/hati-prefetch.XXXXXX")
# A run that stops early (a failed step, Ctrl-C) ends the background jobs with everything they
# started. (Not setsid: a new session is a new scheduler autogroup, which gets an equal share of
# the CPU whatever the priority of the processes in it.)
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
nice -n 19 scripts/image.sh prefetch >"$prefetch_log" 2>&1 &
prefetch=$!
trap 'kill_tree "$prefetch"; [ -z "${release:-}" ] || kill_tree "$release"' EXIT

step "module cycles in the server crate (the check proves it can fail first)"
python3 scripts/check_module_cycles.py --self-test
python3 scripts/check_module_cycles.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "release binary for the container image and the Debian package (in the background)"
# Its own cargo target dir, kept between runs (a clean checkout rebuilds only Hati's crates when
# the dependencies did not change); the image's Debian stages are cached as Docker images.
cache=${HATI_BUILD_CACHE:-/var/cache/hati-build}
if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
  export HATI_RELEASE_TARGET_DIR=${HATI_RELEASE_TARGET_DIR:-$cache/target}
fi
# At SCHED_IDLE: it compiles on the CPU time the end-to-end tests leave (they wait on real time
# more than on the CPU) and never takes it from them; the image and package tests, which need
# the binary, run last and wait for it (cargo's lock on the target dir). Not from the start of
# the run: tried once, clippy took 281 s instead of 210 (with another low-priority build running
# too): even at idle priority a build competes for caches and a core's shared units.
release_log=$(mktemp "${TMPDIR:-/tmp}/hati-release.XXXXXX")
chrt --idle 0 scripts/image.sh binary >"$release_log" 2>&1 &
release=$!
release_started=$SECONDS

step "end-to-end tests (real Moonlight client library)"
if wait "$prefetch"; then
  echo "made the image's Debian stages and fetched the package test's .debs in the background: $(tail -n 1 "$prefetch_log")"
else
  echo "the background prefetch failed (the image and package tests make their stages themselves):"
  tail -n 5 "$prefetch_log"
fi
rm -f "$prefetch_log"
# The binaries exactly as `cargo test` built them: a plain `cargo build --bin hati` resolves the
# dependencies' features without the dev-dependencies and so recompiled half the workspace
# (about 200 s of a cold CI run).
cargo build --workspace --bins --tests
e2e=0
HATI_BIN="$PWD/target/debug/hati" .venv/bin/python -m pytest -v -rs --durations=20 tests/e2e || e2e=$?
if wait "$release"; then
  echo "the release binary built in the background: $(tail -n 1 "$release_log"), started at $release_started s"
else
  echo "the release build failed:"
  tail -n 30 "$release_log"
  e2e=1
fi
rm -f "$release_log"
[ "$e2e" -eq 0 ] || exit "$e2e"
step "done"
