#!/usr/bin/env bash
# run.sh BINARY CORPUS SECONDS [WORKDIR]: replays every input of CORPUS
# through the libFuzzer target BINARY, then fuzzes it for SECONDS seconds.
# New inputs go to WORKDIR (default: a temporary directory, removed after),
# never into the committed corpus. Fails on any crash, leak, UBSan report,
# timeout (10 s per input) or RSS above 2 GiB; the reproducer is left in
# WORKDIR (crash-*, leak-*, timeout-*, oom-*). Prints the execution count.
set -euo pipefail
bin=$1 corpus=$2 secs=$3
work=${4:-}
if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz-run.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/corpus"
# Absolute paths: a target may change its working directory.
bin=$(realpath "$bin") corpus=$(realpath "$corpus") work=$(realpath "$work")
name=$(basename "$bin")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
common=(-rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/")

echo "== $name: replaying $(find "$corpus" -type f | wc -l) inputs of $corpus"
"$bin" "${common[@]}" -runs=0 "$corpus" > "$work/replay.log" 2>&1 || {
  tail -n 60 "$work/replay.log"
  echo "FAIL: $name: an input of $corpus fails"
  exit 1
}

echo "== $name: fuzzing for $secs s"
"$bin" "${common[@]}" -max_total_time="$secs" -print_final_stats=1 \
  "$work/corpus" "$corpus" > "$work/fuzz.log" 2>&1 || {
  tail -n 80 "$work/fuzz.log"
  echo "FAIL: $name: a finding; reproducer in $work:"
  ls "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true
  trap - EXIT
  exit 1
}
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log")
cov=$(grep -Eo 'cov: [0-9]+' "$work/fuzz.log" | tail -n 1)
echo "ok: $name: $execs executions in $secs s ($rate/s), $cov, 0 crashes"
