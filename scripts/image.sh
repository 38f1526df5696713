#!/usr/bin/env bash
# `make image`: Hati's container image, hati:<version> (also hati:latest), built from Debian's
# packages alone (no registry is needed or used):
#   1. base     a Debian 12 minbase root filesystem by debootstrap, imported into Docker;
#   2. runtime  the base plus Hati's run-time packages (deploy/image/runtime-packages.txt),
#               apt lists and docs removed; the libraries the binary links are checked against
#               it (scripts/shlibdeps.sh) and any the list does not pull in go in a second stage;
#   3. image    the release binary, default config, udev rules, entrypoint, user, labels and
#               HEALTHCHECK on top (deploy/image/Dockerfile).
# Stages 1 and 2 are cached as Docker images tagged with a hash of their inputs, so a rebuild
# whose packages did not change only redoes stage 3. Downloaded .debs are kept in
# $HATI_BUILD_CACHE/apt (default /var/cache/hati-build) for the next build and scripts/deb.sh.
#
#   scripts/image.sh [image]   all three stages; prints the image's tag
#   scripts/image.sh base      stage 1 only; prints the base image's tag (a clean Debian 12 root,
#                              also used by the package test)
#   scripts/image.sh binary    the release binary only; prints its path
#   scripts/image.sh prefetch  stages 1 and 2 and the run-time packages with what they recommend
#                              (the package test's install) downloaded into the .deb cache; no
#                              binary needed: the test command runs this in the background while
#                              it compiles, so the image and package tests find the slow,
#                              binary-independent part done
# Environment: HATI_RELEASE_TARGET_DIR (cargo's target dir for the release build, default
# target), HATI_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${HATI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${HATI_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${HATI_BUILD_CACHE:-/var/cache/hati-build}
TARGET_DIR=${HATI_RELEASE_TARGET_DIR:-target}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)

log() { echo "image: $*" >&2; }

# A short hash of everything given (strings and file contents).
inputs_hash() {
  { for input in "$@"; do if [ -f "$input" ]; then cat "$input"; else echo "$input"; fi; done; } |
    sha256sum | cut -c1-16
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

release_binary() {
  log "building the release binary (cargo build --release, target dir $TARGET_DIR)"
  CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked --bin hati >&2
  echo "$TARGET_DIR/release/hati"
}

base_image() {
  local tag
  tag="hati-debian:$SUITE-minbase-$(inputs_hash "$SUITE" "$MIRROR" "$SECURITY_MIRROR" minbase-v2)"
  if have_image "$tag"; then
    echo "$tag"
    return
  fi
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/hati-rootfs.XXXXXX")
  log "debootstrap --variant=minbase $SUITE (about half a minute)"
  mkdir -p "$CACHE/apt"
  if ! debootstrap --variant=minbase --cache-dir="$(realpath "$CACHE/apt")" "$SUITE" "$root" "$MIRROR" \
    >"$root.log" 2>&1; then
    tail -n 20 "$root.log" >&2
    log "debootstrap failed (whole log: $root.log)"
    exit 1
  fi
  rm -f "$root.log"
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # As Debian's own Docker images do: dpkg skips its fsync per unpacked file, which in a
  # container only slows every install (a crash mid-build throws the container away anyway).
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  tar --numeric-owner -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  rm -rf "$root"
  echo "$tag"
}

# The packages deploy/image/runtime-packages.txt lists (required and recommended), and tini.
listed_packages() {
  sed 's/#.*//' deploy/image/runtime-packages.txt | tr -s ' \t' '\n' | grep -v '^$'
  echo tini
}

# Runs apt in a container of the given image with the .deb cache mounted and host networking
# (apt reaches the mirror the way the host does). Extra `docker run` options before `--`.
apt_container() {
  local options=()
  while [ "$1" != "--" ]; do options+=("$1"); shift; done
  shift
  mkdir -p "$CACHE/apt"
  docker run "${options[@]}" --network host \
    -v "$(realpath "$CACHE/apt"):/var/cache/apt/archives" \
    -e DEBIAN_FRONTEND=noninteractive "$@"
}

# Stage 2: the given image plus the given packages, cached under a hash of both.
runtime_image() {
  local base=$1 packages tag container
  shift
  packages=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ')
  tag="hati-runtime:$(inputs_hash "$base" "$packages" runtime-v2)"
  if have_image "$tag"; then
    echo "$tag"
    return
  fi
  log "installing the run-time packages into $base: $packages"
  container="hati-image-build-$$"
  # The .deb cache is a mount, so it never lands in the image.
  apt_container --name "$container" -- "$base" sh -euc "
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends $packages >/dev/null
      rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
             /usr/share/lintian /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old
      if dpkg-query -W -f '\${Package}\n' | grep -E -- '-dev\$|^(gcc|g\+\+|clang|cpp)(-[0-9]+)?\$'; then
        echo 'a compiler or -dev package was pulled in' >&2; exit 1
      fi" >&2 || { docker rm -f "$container" >/dev/null 2>&1; exit 1; }
  docker commit "$container" "$tag" >/dev/null
  docker rm "$container" >/dev/null
  echo "$tag"
}

# The runtime stage for this binary: the listed packages' stage, plus a stage with the libraries
# the binary links that the list does not already pull in (none today: GStreamer's plugin sets
# depend on all of them), so a new library dependency never needs the list edited by hand.
binary_runtime_image() {
  local binary=$1 runtime linked installed missing
  # shellcheck disable=SC2046 # one argument per package
  runtime=$(runtime_image "$(base_image)" $(listed_packages))
  linked=$(scripts/shlibdeps.sh --names "$binary")
  # dpkg-query fails when any of them is unknown; those are the ones this looks for.
  # shellcheck disable=SC2086 # one argument per package
  installed=$(docker run --rm "$runtime" dpkg-query -W -f '${db:Status-Abbrev}${Package}\n' $linked 2>/dev/null || true)
  missing=$(awk '$1 == "ii" { print $2 }' <<<"$installed" | sort | comm -13 - <(sort <<<"$linked"))
  if [ -z "$missing" ]; then
    echo "$runtime"
    return
  fi
  log "the binary links libraries of packages the list does not pull in: $(tr '\n' ' ' <<<"$missing")"
  # shellcheck disable=SC2086 # one argument per package
  runtime_image "$runtime" $missing
}

prefetch() {
  local base
  base=$(base_image)
  log "downloading the run-time packages and what they recommend into $CACHE/apt"
  # shellcheck disable=SC2046 # one argument per package
  apt_container --rm -- "$base" sh -euc "
      apt-get update -qq
      apt-get install -y -qq --download-only $(listed_packages | tr '\n' ' ') >/dev/null" >&2
  # shellcheck disable=SC2046 # one argument per package
  runtime_image "$base" $(listed_packages) >/dev/null
  echo "$base"
}

final_image() {
  local binary runtime context revision inputs
  binary=$(release_binary)
  runtime=$(binary_runtime_image "$binary")
  context=$(mktemp -d)
  trap 'rm -rf "$context"' RETURN
  cp "$binary" "$context/hati"
  strip "$context/hati" 2>/dev/null || true
  cp config/default.toml udev/60-hati.rules deploy/image/entrypoint.sh deploy/image/Dockerfile "$context/"
  revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  inputs=$(inputs_hash "$runtime" "$revision" "$context"/*)
  if [ "$(docker image inspect -f '{{index .Config.Labels "hati.inputs"}}' "hati:$VERSION" 2>/dev/null)" = "$inputs" ]; then
    log "hati:$VERSION is up to date (same binary, files and base)"
    docker tag "hati:$VERSION" hati:latest
    echo "hati:$VERSION"
    return
  fi
  log "adding Hati $VERSION ($revision) to $runtime"
  DOCKER_BUILDKIT=0 docker build -q \
    --build-arg INPUTS="$inputs" \
    --build-arg RUNTIME_IMAGE="$runtime" \
    --build-arg VERSION="$VERSION" \
    --build-arg REVISION="$revision" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "hati:$VERSION" -t hati:latest "$context" >"$context.log" 2>&1 ||
    { cat "$context.log" >&2; rm -f "$context.log"; exit 1; }
  rm -f "$context.log"
  report_size "hati:$VERSION" "$(base_image)"
  echo "hati:$VERSION"
}

# The image's size against the installed sizes of the packages it adds to the base.
report_size() {
  local image=$1 base=$2 image_mb base_mb installed_kb
  image_mb=$(($(docker image inspect -f '{{.Size}}' "$image") / 1000000))
  base_mb=$(($(docker image inspect -f '{{.Size}}' "$base") / 1000000))
  installed_kb=$(docker run --rm --entrypoint sh "$image" -c '
    dpkg-query -W -f "\${Package} \${Installed-Size}\n"' | sort >"${TMPDIR:-/tmp}/hati-image-pkgs.$$"
    docker run --rm "$base" dpkg-query -W -f '${Package}\n' | sort |
    join -v1 "${TMPDIR:-/tmp}/hati-image-pkgs.$$" - | awk '{ sum += $2 } END { print sum }')
  rm -f "${TMPDIR:-/tmp}/hati-image-pkgs.$$"
  log "size: $image ${image_mb} MB (base minbase ${base_mb} MB); the packages added install ${installed_kb} kB ($((installed_kb / 1000)) MB) by their Installed-Size"
}

case "${1:-image}" in
  base) base_image ;;
  binary) release_binary ;;
  image) final_image ;;
  prefetch) prefetch ;;
  *) echo "usage: scripts/image.sh [image|base|binary|prefetch]" >&2; exit 2 ;;
esac
