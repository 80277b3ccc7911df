#!/usr/bin/env bash
# build.without_plugins: a sluice built with -DSLUICE_WITH_REDIS=OFF and
# -DSLUICE_WITH_KAFKA_SINK=OFF compiles neither sink nor needs hiredis, and
# refuses a job that names one with exit 78 and a positioned message; a
# job with the file sink still validates.
# Usage: without_plugins.sh SRC BUILD_DIR C_COMPILER CXX_COMPILER BUILD_TYPE
set -euo pipefail
SRC=$(readlink -f "$1")
BUILD=$2
CC_=$3
CXX_=$4
TYPE=${5:-RelWithDebInfo}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-noplug.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

start=$(date +%s)
# Only the sluice target: no sanitizer variants, no test suite.
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE="$TYPE" \
  -DCMAKE_C_COMPILER="$CC_" -DCMAKE_CXX_COMPILER="$CXX_" \
  -DSLUICE_WITH_REDIS=OFF -DSLUICE_WITH_KAFKA_SINK=OFF \
  -DSLUICE_SANITIZER_VARIANTS=OFF -DSLUICE_TESTS=OFF >"$WORK/cmake.log" 2>&1 ||
  fail "configure: $(tail -20 "$WORK/cmake.log")"
cmake --build "$BUILD" --target sluice -j2 >"$WORK/build.log" 2>&1 ||
  fail "build: $(tail -40 "$WORK/build.log")"
echo "configured and built in $(($(date +%s) - start)) s"
SLUICE="$BUILD/sluice"

# hiredis was not looked for, neither sink was compiled, nothing links it.
if grep -q '^HIREDIS_' "$BUILD/CMakeCache.txt"; then
  fail "hiredis was looked up with SLUICE_WITH_REDIS=OFF"
fi
if find "$BUILD" -path '*sinks/redis/*.o' -o -path '*sinks/kafka/*.o' | grep -q .; then
  fail "a left-out sink was compiled: $(find "$BUILD" -path '*sinks/*/*.o')"
fi
if readelf -d "$SLUICE" | grep -q 'hiredis'; then
  fail "sluice links hiredis"
fi

# expect_validate CODE FILE: sluice validate FILE exits CODE; output in out.
expect_validate() {
  local want=$1 rc=0
  "$SLUICE" validate "$2" >"$WORK/out" 2>&1 || rc=$?
  [ "$rc" -eq "$want" ] || fail "validate $2: exit $rc, want $want: $(cat "$WORK/out")"
}

src='source:
  kafka:
    brokers: embedded
    topics: [clicks]'

cat >"$WORK/redis.yaml" <<YAML
job: to-redis
$src
sink:
  redis:
    url: redis://127.0.0.1:6379/0
    command: SET k:{user} {event}
YAML
expect_validate 78 "$WORK/redis.yaml"
grep -qF "$WORK/redis.yaml:7:3: sink 'redis' is not built into this binary (built without SLUICE_WITH_REDIS)" "$WORK/out" ||
  fail "redis job: $(cat "$WORK/out")"
# run refuses it the same way, before connecting to anything.
rc=0
"$SLUICE" run "$WORK/redis.yaml" >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -eq 78 ] || fail "run of the redis job: exit $rc: $(cat "$WORK/out")"
grep -qF "sink 'redis' is not built into this binary (built without SLUICE_WITH_REDIS)" "$WORK/out" ||
  fail "run of the redis job: $(cat "$WORK/out")"

cat >"$WORK/kafka.yaml" <<YAML
job: to-kafka
$src
sink:
  kafka: { brokers: embedded, topic: out }
YAML
expect_validate 78 "$WORK/kafka.yaml"
grep -qF "$WORK/kafka.yaml:7:3: sink 'kafka' is not built into this binary (built without SLUICE_WITH_KAFKA_SINK)" "$WORK/out" ||
  fail "kafka job: $(cat "$WORK/out")"

cat >"$WORK/dead.yaml" <<YAML
job: dead-to-kafka
$src
sink:
  file: { path: $WORK/out-dir }
dead_letter:
  kafka: { brokers: embedded, topic: dead }
YAML
expect_validate 78 "$WORK/dead.yaml"
grep -qF "$WORK/dead.yaml:9:3: dead_letter 'kafka' is not built into this binary (built without SLUICE_WITH_KAFKA_SINK)" "$WORK/out" ||
  fail "dead-letter job: $(cat "$WORK/out")"

# What is built still works, and the list of sinks says what is there.
cat >"$WORK/file.yaml" <<YAML
job: to-file
$src
sink:
  file: { path: $WORK/out-dir }
dead_letter:
  file: { path: $WORK/dead-dir }
YAML
expect_validate 0 "$WORK/file.yaml"
cat >"$WORK/typo.yaml" <<YAML
job: typo
$src
sink:
  fil: { path: $WORK/out-dir }
YAML
expect_validate 78 "$WORK/typo.yaml"
grep -qF "unknown sink 'fil'; did you mean 'file'? (known: console, file)" "$WORK/out" ||
  fail "typo job: $(cat "$WORK/out")"
echo "ok: redis and kafka sinks left out, refused with exit 78; file job valid"
