#!/usr/bin/env bash
# Installs what building, running and testing Hati needs on Debian 12, skipping what is present:
# (--package: also what `make image` and `make deb` need; --test: all of it)
# Debian packages (GStreamer with webrtcbin and libnice, PulseAudio, Wayland, weston, …) and, with --test, a Python venv in
# .venv holding the real Moonlight client library (moonlight-python) for the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config gcc
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-nice gstreamer1.0-pulseaudio pulseaudio pulseaudio-utils libpulse-dev
  libpixman-1-dev libxkbcommon-dev libwayland-dev weston xwayland
  libc6-dev tar procps python3-venv
)

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi

# Installs those of the given Debian packages that are not installed yet.
install_missing() {
  local missing=()
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_missing "${APT_PACKAGES[@]}"

# The Docker runner and its tests need an engine; the machine's own is used when present.
if ! command -v docker >/dev/null; then
  echo "setup: installing docker.io"
  $sudo_cmd apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  $sudo_cmd service docker start >/dev/null 2>&1 || true
  docker info >/dev/null 2>&1 || echo "setup: warning: the Docker engine does not answer; Docker apps cannot run" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

if [ "${1:-}" = "--package" ] || [ "${1:-}" = "--test" ]; then
  # `make image` and `make deb` (and their tests): debootstrap makes the image's Debian root,
  # dpkg-dev computes the package's Depends and builds it, systemd-analyze checks its unit,
  # docker-compose runs deploy/compose.yaml.
  install_missing debootstrap dpkg-dev binutils systemd docker-compose
fi

if [ "${1:-}" = "--test" ]; then
  # The dashboard test drives Debian's Chromium with Selenium (xev and xmessage from x11-utils are
  # the X11 clients of the compositor tests); the network tests build
  # namespaces and cap or drop traffic with iproute2 (tc tbf) and nftables; the gateway's DNAT
  # forwarding cuts an ended session's flows with conntrack.
  install_missing chromium chromium-driver iproute2 nftables conntrack x11-utils
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import moonlight_python, pytest, zeroconf, selenium, schemathesis, kubernetes_validate, yaml" 2>/dev/null; then
    echo "setup: creating .venv with moonlight-python, pytest, selenium, schemathesis and kubernetes-validate"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q "moonlight-python==0.3.0" "pytest>=7" "zeroconf>=0.80" "selenium>=4.20" "schemathesis>=4.0,<5" "kubernetes-validate==1.37.0"
  fi
fi
