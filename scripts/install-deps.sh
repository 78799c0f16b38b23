#!/usr/bin/env bash
# Installs what building and testing pagoda needs on Debian/Ubuntu: the compiler
# tool chain, the libraries pagoda links, clang for the fuzz targets, and Node.js
# with npm for the default model and the client tests. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl
  libmicrohttpd-dev libcjson-dev libpcre2-dev libcurl4-openssl-dev libxxhash-dev libssl-dev
  clang libclang-rt-dev
  nodejs npm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine that already has node and npm from elsewhere needs no Debian copies.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do
    [[ $p == nodejs || $p == npm ]] || filtered+=("$p")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
