#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need,
# only those missing. Uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config python3
      kcat librdkafka-dev libck-dev libyaml-dev liblz4-dev libcmocka-dev
      libcjson-dev libsimdjson-dev libdouble-conversion-dev zlib1g-dev
      libhiredis-dev redis-server libmicrohttpd-dev python3-prometheus-client docker-compose
      python3-confluent-kafka python3-redis gnuplot-nox clang-format
      clang libclang-rt-14-dev curl)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The real Apache Kafka broker of the tests (scripts/kafka-broker.sh): a
# Java 17 or newer and Maven, from Debian where missing, then the broker's
# jars from Maven Central into a cache outside the repository (once).
java_ok() {
  local v
  command -v java >/dev/null || return 1
  v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [ "${v%%.*}" -ge 17 ] 2>/dev/null
}
jpkgs=()
java_ok || jpkgs+=(default-jdk-headless)
command -v mvn >/dev/null || jpkgs+=(maven)
if [ ${#jpkgs[@]} -gt 0 ]; then
  echo "installing Debian packages: ${jpkgs[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${jpkgs[@]}"
fi
bash "$(dirname "$0")/kafka-broker.sh" fetch
# The Kafka Streams peer of the benchmarks (tests/bench/peers), which
# `make test` smoke-runs (bench.peers_smoke): its jars from Maven Central
# into a cache outside the repository; not built again when built already.
# Flink and Spark are larger: only `make bench-peers` builds them.
bash "$(dirname "$0")/../tests/bench/peers/build.sh" kstreams
