#!/usr/bin/env bash
# Builds the JVM peers of the benchmarks (tests/bench/peers/compare.py) from
# their pom.xml: each peer's jar and its runtime dependencies, from Maven
# Central, into a cache directory outside the repository.
#
#   build.sh PEER...     kstreams, flink, spark (all: every one)
#   build.sh --lib PEER  prints the directory of PEER's jars
#
# A peer lands in $SLUICE_PEERS_CACHE/PEER/lib (by default
# ${XDG_CACHE_HOME:-~/.cache}/sluice/peers), marked by lib/.stamp: the hash
# of its pom.xml and sources. A peer whose stamp matches is not built again
# (no Maven at all); otherwise Maven runs offline first (-o: everything in
# ~/.m2 already) and online when that fails.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${SLUICE_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/peers}
ALL=(kstreams flink spark)

die() {
  echo "build.sh: $*" >&2
  exit 1
}

stamp() {
  (cd "$HERE/$1" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1
}

build() {
  local peer=$1 out=$CACHE/$1 want
  [ -f "$HERE/$peer/pom.xml" ] || die "no peer '$peer' (peers: ${ALL[*]})"
  want=$(stamp "$peer")
  if [ "$(cat "$out/lib/.stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (make deps installs maven)"
  mkdir -p "$out"
  rm -rf "$out/lib" "$out/target"
  local mvn=(mvn -B -q -f "$HERE/$peer/pom.xml" -Dpeers.out="$out" package)
  if ! "${mvn[@]}" -o >"$out/build.log" 2>&1; then
    echo "building the $peer peer (Maven Central) into $out"
    rm -rf "$out/lib"
    local try
    for try in 1 2; do
      if "${mvn[@]}" >"$out/build.log" 2>&1; then
        break
      fi
      [ "$try" = 2 ] && {
        tail -30 "$out/build.log" >&2
        die "cannot build the $peer peer; full log: $out/build.log"
      }
      echo "build failed, retrying once" >&2
    done
  fi
  echo "$want" >"$out/lib/.stamp"
}

if [ "${1:-}" = "--lib" ]; then
  [ $# -eq 2 ] || die "usage: build.sh --lib PEER"
  echo "$CACHE/$2/lib"
  exit 0
fi
[ $# -ge 1 ] || die "usage: build.sh PEER... (peers: ${ALL[*]} or all)"
peers=("$@")
[ "$*" = all ] && peers=("${ALL[@]}")
for p in "${peers[@]}"; do
  build "$p"
done
