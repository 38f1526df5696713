#!/usr/bin/env bash
# Prints the Debian packages a binary's shared libraries come from, as dpkg-shlibdeps computes
# them for a package's Depends (cargo-deb's "$auto" does the same):
#   scripts/shlibdeps.sh BINARY            libc6 (>= 2.34), libglib2.0-0 (>= 2.56.0), …
#   scripts/shlibdeps.sh --names BINARY    libc6 libglib2.0-0 … (one per line, no versions)
# Used by the container image (scripts/image.sh) and the Debian package (scripts/deb.sh), so
# both install exactly what the binary links.
set -euo pipefail
names=false
if [ "${1:-}" = "--names" ]; then names=true; shift; fi
binary=$(realpath "${1:?usage: shlibdeps.sh [--names] BINARY}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/debian"
printf 'Source: hati\n\nPackage: hati\nArchitecture: any\n' >"$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -e"$binary" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
if [ -z "$depends" ]; then
  echo "shlibdeps: dpkg-shlibdeps found no libraries for $binary" >&2
  exit 1
fi
if $names; then
  tr ',' '\n' <<<"$depends" | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^$' | sort -u
else
  echo "$depends"
fi
