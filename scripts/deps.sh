#!/usr/bin/env bash
# Install the Debian packages Magpie needs to build and test (only the missing ones);
# chromium is for the browser tests of the monitor UI and the chat demo (tests/e2e).
set -euo pipefail
PKGS=(build-essential cmake pkg-config libuv1-dev libssl-dev liblmdb-dev libjansson-dev libyaml-dev
      libh2o-dev zlib1g-dev libcurl4-openssl-dev openssl libcmocka-dev chromium)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
