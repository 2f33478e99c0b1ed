#!/usr/bin/env bash
# Installs the system packages the tests and the demo use (Debian/Ubuntu, as root).
# Not root: reports what is missing and goes on, so a developer can install it by hand.
set -euo pipefail

PACKAGES=(
  python3-venv      # the virtualenv
  sip-tester        # SIPp: carrier simulator for interop tests, demo and benchmarks
  baresip-core      # a real SIP phone with a real codec stack
  kamailio          # a real SIP proxy (digest auth, Record-Route)
  postgresql        # the store tests run against a real server
  libsndfile1       # WAV recording (soundfile)
  curl
)

# The media tests bind RTP on ::1 as well: turn IPv6 on for loopback where it is off (as root).
if [ "$(cat /proc/sys/net/ipv6/conf/lo/disable_ipv6 2>/dev/null || echo 0)" = "1" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    sysctl -q -w net.ipv6.conf.lo.disable_ipv6=0 || echo "could not enable IPv6 on loopback" >&2
  else
    echo "IPv6 is off on loopback (as root: sysctl -w net.ipv6.conf.lo.disable_ipv6=0)" >&2
  fi
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start services we do not use; the tests run their own on loopback.
for svc in kamailio postgresql; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  service "$svc" stop >/dev/null 2>&1 || true
done
