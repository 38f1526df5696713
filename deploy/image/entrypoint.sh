#!/bin/sh
# The image's entrypoint (run under tini, which reaps orphans and forwards signals).
# Started as root (the default): gives the hati user the groups that own what the container
# was handed (the Docker socket, /dev/dri render nodes, /dev/uinput, /dev/uhid: their group ids
# differ from host to host), makes the state and shared runtime directories its own, and runs
# Hati as that user. Started as any other user (`--user`), it runs Hati as it is.
# `serve` uses /etc/hati/config.toml when one is mounted there.
set -eu

if [ "${1:-}" = serve ] && [ -f /etc/hati/config.toml ]; then
  case " $* " in
    *" --config "*) ;;
    *) shift; set -- serve --config /etc/hati/config.toml "$@" ;;
  esac
fi

if [ "$(id -u)" != 0 ]; then
  exec /usr/bin/hati "$@"
fi

groups=$(id -g hati)
for node in /var/run/docker.sock /dev/dri/renderD* /dev/dri/card* /dev/uinput /dev/uhid; do
  [ -e "$node" ] || continue
  gid=$(stat -c %g "$node")
  case ",$groups," in *",$gid,"*) ;; *) groups="$groups,$gid" ;; esac
done

state=${HATI_STATE_DIR:-/var/lib/hati}
runtime=${HATI_RUNTIME_DIR:-/run/hati}
mkdir -p "$state" "$runtime"
# A state directory written by another uid (a bind mount from an older install, a host run as
# root): hand it to hati, contents included, so an upgrade keeps the identity and the pairings.
if [ "$(stat -c %u "$state")" != "$(id -u hati)" ] || [ -n "$(find "$state" ! -user hati -print -quit)" ]; then
  chown -R hati:hati "$state"
fi
chown hati:hati "$runtime"
chmod 0700 "$state"

# setpriv changes ids only: the user's own environment (PulseAudio writes under $HOME) goes too.
export HOME="$state" USER=hati LOGNAME=hati
# `hati gateway` with forwarding = "dnat" programs nftables: when the container was given
# CAP_NET_ADMIN (compose cap_add, a pod's securityContext), the gateway keeps that one
# capability; every other process and capability stays dropped.
caps=-all
if [ "${1:-}" = gateway ] && grep -q '^CapBnd:' /proc/self/status \
   && [ $(( 0x$(awk '/^CapBnd:/ {print $2}' /proc/self/status) >> 12 & 1 )) = 1 ]; then
  caps=-all,+net_admin
fi
if [ "$caps" = -all ]; then
  exec setpriv --reuid=hati --regid=hati --groups="$groups" --inh-caps=-all --bounding-set=-all \
    -- /usr/bin/hati "$@"
fi
exec setpriv --reuid=hati --regid=hati --groups="$groups" --inh-caps="$caps" --ambient-caps="$caps" \
  --bounding-set="$caps" -- /usr/bin/hati "$@"
