#!/usr/bin/env bash
# Installs what building, running and testing Hati needs on Debian 12, skipping what is present:
# Debian packages (GStreamer, PulseAudio, Wayland, weston, …) and, with --test, a Python venv in
# .venv holding the real Moonlight client library (moonlight-python) for the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config gcc
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-pulseaudio pulseaudio pulseaudio-utils libpulse-dev
  libpixman-1-dev libxkbcommon-dev libwayland-dev weston xwayland
  python3-venv
)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

if [ "${1:-}" = "--test" ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import moonlight_python, pytest, zeroconf" 2>/dev/null; then
    echo "setup: creating .venv with moonlight-python and pytest"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q "moonlight-python==0.3.0" "pytest>=7" "zeroconf>=0.80"
  fi
fi
