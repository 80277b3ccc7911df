#!/usr/bin/env bash
# The Kafka sink's exactly-once on the real broker, with mirror_offsets off
# (the default): the transaction alone stores the records and the source
# offsets. The output is read as a user reads it, read_committed with no
# header tricks (check_eos.py): every row of the input exactly once, keyed
# by its user; the group offsets the transactions committed equal the end of
# the input. Then the same job SIGKILLed at a crash point inside batch 2's
# transaction (after the records, after the offsets) and at the point after
# the sink's commit, each restarted: still exact. The crashed attempt's
# records are in the log (read_uncommitted, by their attempt header) and
# hidden from read_committed; after the sink-commit crash the restart takes
# batch 2 from the group offsets, the sink's record.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
COUNT=20000
tag=it-real-eos-$$
create_topic "$tag-in" 4
"$SLUICE" produce --brokers "$BROKERS" --topic "$tag-in" --count $COUNT --seed 7 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
kcat -b "$BROKERS" -C -t "$tag-in" -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
  fail "kcat could not read the input back"
[ "$(wc -l <"$WORK/records.jsonl")" = $COUNT ] || fail "kcat read $(wc -l <"$WORK/records.jsonl") records"

# write_job CELL: $WORK/CELL.yaml, job $tag-CELL (so transactional.id and
# group sluice-$tag-CELL), output topic $tag-out-CELL, checkpoint
# $WORK/CELL-ckpt. The stateless job of the crash matrix.
write_job() {
  create_topic "$tag-out-$1" 4
  cat >"$WORK/$1.yaml" <<YAML
job: $tag-$1
source:
  kafka:
    brokers: $BROKERS
    topics: [$tag-in]
    max_records_per_batch: 5000
    task_max_records: 1500
pipeline:
  - parse: json
  - filter: 'id % 10 != 7'
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
  - select: [id, user, cents]
sink:
  kafka:
    brokers: $BROKERS
    topic: $tag-out-$1
    key: '{user}'
    exactly_once: true
    timeout: 30s
    properties: { linger.ms: 0 }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1-ckpt, retain: 1000 }
workers: 2
YAML
}

# check CELL: the read_committed output and the group offsets.
check() {
  $PY "$CHECK" output "$BROKERS" "$tag-out-$1" "$WORK/records.jsonl" || fail "cell $1: output"
  $PY "$CHECK" offsets "$BROKERS" "sluice-$tag-$1" "$tag-in" || fail "cell $1: group offsets"
}

# attempt_records CELL ATTEMPT: how many records of ATTEMPT the output
# topic's log holds (read_uncommitted: aborted and open transactions too).
attempt_records() {
  kcat -b "$BROKERS" -C -t "$tag-out-$1" -e -q -X isolation.level=read_uncommitted \
    -f '%h\n' 2>/dev/null | grep -c "sluice.attempt=$2\$" || true
}

# --- an uninterrupted run
write_job 0
expect_exit 0 "$SLUICE" run "$WORK/0.yaml" --progress none
batches=$(ls "$WORK/0-ckpt/commits" | grep -c '^[0-9]*$')
[ "$batches" -ge 4 ] || fail "the run committed only $batches batches"
check 0
echo "ok: uninterrupted, $batches batches"

# --- SIGKILL inside batch 2's transaction, then a restart
cell=0
for p in sink.kafka.after_send_offsets sink.kafka.after_produce; do
  cell=$((cell + 1))
  write_job $cell
  SLUICE_FAILPOINTS="$p=crash@2" expect_exit 137 "$SLUICE" run "$WORK/$cell.yaml" \
    --progress none --log-level debug
  expect_err "^sluice: failpoint $p fired: crash \(hit 2\)$"
  crashed=$(sed -n 's/.*batch 2 attempt \([0-9a-f.-]*\): producing.*/\1/p' "$WORK/err.txt" | tail -1)
  [ -n "$crashed" ] || fail "$p: no attempt of batch 2 in the log"
  [ ! -e "$WORK/$cell-ckpt/commits/2" ] || fail "$p: batch 2 committed before the crash"
  expect_exit 0 "$SLUICE" run "$WORK/$cell.yaml" --progress none
  check $cell
  n=$(attempt_records $cell "$crashed")
  echo "ok: $p crash, restart exact; the crashed attempt $crashed left $n records in the log, none visible"
  # Usually the crashed attempt's records are in the log (so the exact
  # read above hid them), but whether they left librdkafka's queue before
  # the crash depends on its connections: reported, not required.
done

# --- SIGKILL after batch 2's transaction committed, before commits/2: the
# restart takes batch 2 from the group offsets the transaction stored.
cell=$((cell + 1))
write_job $cell
SLUICE_FAILPOINTS="batch.after_sink_commit=crash@2" expect_exit 137 "$SLUICE" run \
  "$WORK/$cell.yaml" --progress none
[ ! -e "$WORK/$cell-ckpt/commits/2" ] || fail "commits/2 written before the crash"
expect_exit 0 "$SLUICE" run "$WORK/$cell.yaml" --progress none
expect_err "the sink already holds batch 2: completed its checkpoint commit"
check $cell
echo "ok: Kafka sink exactly-once on the real broker, mirror_offsets off"
