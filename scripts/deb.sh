#!/usr/bin/env bash
# `make deb`: the Debian package target/debian/hati_<version>_<arch>.deb, built with dpkg-deb
# from the release binary (scripts/image.sh binary) and deploy/debian/ (docs/package.md):
#   /usr/bin/hati                          the binary, stripped
#   /etc/hati/config.toml                  a conffile: config/default.toml, for the admin to edit
#   /usr/lib/systemd/system/hati.service   the hardened system unit
#   /usr/lib/sysusers.d/hati.conf          the hati user and the groups the unit names
#   /usr/lib/udev/rules.d/60-hati.rules    /dev/uinput and the virtual pads to group input
#   /usr/lib/modules-load.d/hati.conf      loads uinput at boot
#   /usr/share/doc/hati/                   copyright, README.md, package.md
# Depends: the libraries the binary links (scripts/shlibdeps.sh, what cargo-deb's $auto does)
# and deploy/image/runtime-packages.txt's required lines; Recommends: its `# recommends` lines.
# dpkg-deb rather than cargo-deb, so CI does not compile cargo-deb. Prints the .deb's path last.
# Environment: HATI_RELEASE_TARGET_DIR (cargo's target dir for the release build, default target);
# HATI_DEB_BINARY (package this hati binary instead of building one, e.g. one CI built).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

log() { echo "deb: $*" >&2; }

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
ARCH=$(dpkg --print-architecture)
OUT=target/debian
ROOT=$OUT/hati_${VERSION}_${ARCH}
DEB=$OUT/hati_${VERSION}_${ARCH}.deb

binary=${HATI_DEB_BINARY:-$(scripts/image.sh binary | tail -n1)}

# Package lists from runtime-packages.txt: "pkg" lines are required, "pkg  # recommends" optional.
runtime_list() {
  local want=$1
  awk -v want="$want" '
    { optional = ($0 ~ /#[ \t]*recommends/); sub(/#.*/, ""); gsub(/[ \t]+/, " ") }
    $1 != "" && ((want == "depends" && !optional) || (want == "recommends" && optional)) {
      for (i = 1; i <= NF; i++) print $i
    }' deploy/image/runtime-packages.txt | paste -sd, - | sed 's/,/, /g'
}

log "computing the library dependencies of $binary"
libraries=$(scripts/shlibdeps.sh "$binary")
# procps: /bin/kill for ExecReload; passwd: useradd/groupadd in postinst without systemd.
depends="$libraries, $(runtime_list depends), procps, passwd"
recommends=$(runtime_list recommends)

rm -rf "$ROOT" "$DEB"
install -D -m 0755 "$binary" "$ROOT/usr/bin/hati"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/hati"
install -D -m 0644 config/default.toml "$ROOT/etc/hati/config.toml"
install -D -m 0644 deploy/debian/hati.service "$ROOT/usr/lib/systemd/system/hati.service"
install -D -m 0644 deploy/debian/hati.sysusers "$ROOT/usr/lib/sysusers.d/hati.conf"
install -D -m 0644 deploy/debian/modules-load.conf "$ROOT/usr/lib/modules-load.d/hati.conf"
install -D -m 0644 udev/60-hati.rules "$ROOT/usr/lib/udev/rules.d/60-hati.rules"
install -D -m 0644 deploy/debian/copyright "$ROOT/usr/share/doc/hati/copyright"
install -m 0644 README.md docs/package.md "$ROOT/usr/share/doc/hati/"

install -d -m 0755 "$ROOT/DEBIAN"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$ROOT/DEBIAN/"
install -m 0644 deploy/debian/conffiles "$ROOT/DEBIAN/conffiles"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f ! -path './etc/*' -printf '%P\0' |
  LC_ALL=C sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/md5sums"

cat >"$ROOT/DEBIAN/control" <<CONTROL
Package: hati
Version: $VERSION
Architecture: $ARCH
Maintainer: Hati developers <hati@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
Depends: $depends
Recommends: $recommends
Suggests: docker.io | podman-docker
Section: net
Priority: optional
Homepage: https://example.invalid/hati
Description: Moonlight-compatible game-streaming host
 Hati streams games and desktops to Moonlight clients and web browsers: pair a client with a
 PIN, pick an app, play. Each session gets its own Wayland desktop (with Xwayland), a private
 PulseAudio sound server and virtual gamepads; apps run as processes or Docker containers.
 .
 This package runs Hati as the hardened system service hati.service, as the user hati, with
 its state in /var/lib/hati and its configuration in /etc/hati/config.toml.
CONTROL

dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >&2
rm -rf "$ROOT"
log "$(dpkg-deb -f "$DEB" Package Version Architecture Installed-Size | paste -sd' ')"
echo "$DEB"
