#!/usr/bin/env bash
# Installs the Debian packages dylive needs, only when some are missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config ca-certificates python3
      libhiredis-dev libevent-dev libwebsockets-dev libev-dev libwebsockets-evlib-ev libprotobuf-c-dev protobuf-c-compiler
      libcjson-dev libcurl4-openssl-dev zlib1g-dev libdeflate-dev libssl-dev
      redis-server redis-tools redis-sentinel clang libclang-rt-14-dev openssl
      python3-redis chromium fonts-wqy-microhei
      prometheus yamllint systemd python3-yaml)
# tests/deploy: promtool (prometheus), yamllint, systemd-analyze (systemd), kubectl from Debian's
# kubernetes-client unless a kubectl is already there (another package owning /usr/bin/kubectl,
# e.g. Google's, would make the install fail)
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the redis-server package starts a system instance; dylive's scripts use their own
$SUDO systemctl disable --now redis-server redis-sentinel prometheus prometheus-node-exporter >/dev/null 2>&1 || true
