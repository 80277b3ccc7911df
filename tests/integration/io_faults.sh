#!/usr/bin/env bash
# I/O faults in the checkpoint store, the window state snapshot and the
# file sink, injected at their system calls through crash points armed with
# error(ERRNO) (the injected errno takes the path a failed fsync, rename or
# close takes). For each fault: a first run commits half of the input; a
# second run, over the rest, meets the fault at every hit (a disk that stays
# bad) and must exit 1 with a message naming the file and the error, having
# committed nothing more; the checkpoint must still be readable; once the
# fault is gone, a third run ends with output equal to the reference
# computed from the input, nothing lost, nothing twice. The sink retries a
# failed commit twice only (the default rides out five minutes of outage).
source "$(dirname "$0")/lib.bash" "$@"
PY=/usr/bin/python3
OUTPUT="$SRC/tests/integration/crash/output.py"
start_mock --topic clicks:4

# case POINT ERRNO MESSAGE: one fault, with its own job, input and output.
# A fault in writing commits/N comes after the sink committed N: the sink
# then holds one batch more than the checkpoint (it is the authority, and
# the restart completes commits/N from it).
n=0
case_() {
  local point=$1 errno=$2 msg=$3 lead=0 renamed=0
  case $point in checkpoint.commits.*) lead=1 ;; esac
  # A failed directory fsync comes after the rename: the new file may be in
  # place (or may not survive a power cut); the run stops either way.
  case $point in *.before_dir_fsync) renamed=1 ;; esac
  n=$((n + 1))
  local topic="in$n" job="$WORK/job$n.yaml"
  cat >"$job" <<YAML
job: io-faults-$n
source:
  kafka:
    brokers: $BROKERS
    topics: [$topic]
    max_records_per_batch: 2500
    task_max_records: 1000
pipeline:
  - parse: json
  - filter: 'event == "buy" && amount > 0'
  - window:
      tumbling: 10s
      time: ts
      watermark: 1h
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count() }
      output: update
sink:
  file: { path: $WORK/out$n, retry: { attempts: 2, backoff: 10ms } }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt$n }
workers: 2
YAML
  "$SLUICE" produce --brokers "$BROKERS" --topic "$topic" --count 5000 --seed $n 2>/dev/null ||
    fail "produce"
  expect_exit 0 "$SLUICE" run "$job" --progress none
  local before
  before=$(ls "$WORK/ckpt$n/commits" | grep -c '^[0-9]*$')
  [ "$before" -ge 2 ] || fail "$point: the first run committed $before batches"
  "$SLUICE" produce --brokers "$BROKERS" --topic "$topic" --count 5000 --first 5000 \
    --seed $n 2>/dev/null || fail "produce"
  # The fault, at every hit.
  SLUICE_FAILPOINTS="$point=error($errno)" expect_exit 1 "$SLUICE" run "$job" --progress none
  expect_err "failpoint $point fired: error\($errno\)"
  expect_err "$msg"
  local after
  after=$(ls "$WORK/ckpt$n/commits" | grep -c '^[0-9]*$')
  [ "$after" -ge "$before" ] && [ "$after" -le $((before + renamed)) ] ||
    fail "$point: $((after - before)) batches committed despite the fault"
  local visible
  visible=$(ls "$WORK/out$n/_manifest" | grep -c '^[0-9]*$')
  [ "$visible" -ge "$before" ] && [ "$visible" -le $((before + lead)) ] ||
    fail "$point: the sink holds $visible batches, the checkpoint $before"
  expect_exit 0 "$SLUICE" checkpoint show "$WORK/ckpt$n"
  # The fault is gone: the run ends exactly.
  expect_exit 0 "$SLUICE" run "$job" --progress none
  kcat -b "$BROKERS" -C -t "$topic" -e -q -f '%s\n' >"$WORK/records$n.jsonl" 2>/dev/null
  [ "$(wc -l <"$WORK/records$n.jsonl")" = 10000 ] || fail "kcat read back too few records"
  $PY "$OUTPUT" expect file windowed "$WORK/records$n.jsonl" >"$WORK/want$n.json"
  $PY "$OUTPUT" final file windowed "$WORK/out$n" >"$WORK/got$n.json"
  cmp -s "$WORK/want$n.json" "$WORK/got$n.json" || {
    diff "$WORK/want$n.json" "$WORK/got$n.json" | head >&2
    fail "$point=error($errno): the output after the fault differs from the reference"
  }
  echo "ok: $point=error($errno): exit 1 naming the file, nothing committed, then exact"
}

case_ checkpoint.offsets.before_fsync EIO "ckpt$((n + 1))/offsets/[0-9]+: fsync of temporary file: Input/output error"
case_ checkpoint.offsets.before_rename EACCES "ckpt$((n + 1))/offsets/[0-9]+: rename of temporary file: Permission denied"
case_ checkpoint.commits.before_fsync ENOSPC "ckpt$((n + 1))/commits/[0-9]+: fsync of temporary file: No space left on device"
case_ checkpoint.commits.before_dir_fsync EIO "ckpt$((n + 1))/commits: fsync of directory|ckpt$((n + 1))/commits/[0-9]+: fsync of directory: Input/output error"
case_ checkpoint.state.before_fsync ENOSPC "ckpt$((n + 1))/state/[0-9]+/shards: fsync of temporary file: No space left on device"
case_ checkpoint.state.before_rename EROFS "ckpt$((n + 1))/state/[0-9]+/shards: rename of temporary file: Read-only file system"
case_ checkpoint.state.index.before_fsync EIO "ckpt$((n + 1))/state/[0-9]+/index: fsync of temporary file: Input/output error"
case_ sink.file.after_part_fsync EIO "file sink: close .*out$((n + 1))/part-[^:]*: Input/output error"
case_ sink.file.manifest.before_fsync ENOSPC "out$((n + 1))/_manifest/[0-9]+: fsync of temporary file: No space left on device"
case_ sink.file.manifest.before_rename EACCES "out$((n + 1))/_manifest/[0-9]+: rename of temporary file: Permission denied"
echo "ok: I/O faults"
