#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need,
# only those missing. Uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config python3
      kcat librdkafka-dev libck-dev libyaml-dev liblz4-dev libcmocka-dev
      libcjson-dev libsimdjson-dev libdouble-conversion-dev zlib1g-dev
      libhiredis-dev redis-server libmicrohttpd-dev python3-prometheus-client docker-compose
      python3-confluent-kafka python3-redis gnuplot-nox clang-format)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
