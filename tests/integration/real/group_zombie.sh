#!/usr/bin/env bash
# Group mode on the real broker, a zombie: instances A and Z of one job
# (source.kafka.group, the Kafka sink with exactly_once) share 12
# partitions. Z stops (SIGSTOP, by its crash point's `stop` action) inside
# its third batch's transaction, after producing its records and before
# sending its offsets. Its session times out, the group gives every
# partition to A, which resumes them at the sink's positions. Then Z is
# resumed (SIGCONT): it sends its offsets with its old membership's
# metadata, the broker refuses them (KIP-447), Z aborts the transaction,
# abandons the batch, rejoins and goes on. The test proves the attempt (the
# log line naming the batch and attempt) and the refusal; the output read
# read_committed is every row exactly once, and none of the refused
# attempt's records is visible.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
COUNT=12000
tag=it-real-gzo-$$
input_topic "$tag-in" 12 $COUNT 5
create_topic "$tag-out" 12

group_kafka_job "$tag" 100 6000 "interval: 250ms" true

FAIL_SHOW="$WORK/a.err $WORK/z.err"
start_instance a
pid_a=$!
start_instance z SLUICE_FAILPOINTS="sink.kafka.after_produce=stop@3"
pid_z=$!

wait_for 120 stopped $pid_z
grep -q "^sluice: failpoint sink.kafka.after_produce fired: stop (hit 3)$" "$WORK/z.err" ||
  fail "Z stopped, but not at its crash point"
has_parts z || fail "Z owned no partition"
echo "Z stopped inside a transaction"

# Z's session times out: A owns all 12 (its newest "owns" line, written
# after Z stopped: A may have owned all 12 before Z joined)
before=$(owned_lines a)
owns_all() { running $pid_a && [ "$(owned_lines a)" -gt "$before" ] && [ "$(owns_now a)" = 12 ]; }
wait_for 120 owns_all
echo "A owns every partition"

kill -CONT $pid_z
refused() { running $pid_a $pid_z && grep -q "refused the offsets of batch" "$WORK/z.err"; }
wait_for 120 refused
line=$(grep -m1 "refused the offsets of batch" "$WORK/z.err")
batch=$(sed -n 's/.*refused the offsets of batch \([0-9]*\) (attempt \([^)]*\)).*/\1/p' <<<"$line")
attempt=$(sed -n 's/.*refused the offsets of batch \([0-9]*\) (attempt \([^)]*\)).*/\2/p' <<<"$line")
[ -n "$batch" ] && [ -n "$attempt" ] || fail "cannot read the refused batch: $line"
grep -q "batch $batch attempt $attempt: sending its offsets to group '$tag-g'" "$WORK/z.err" ||
  fail "no attempt to send batch $batch's offsets in Z's log"
# Z logs the refusal, aborts the transaction (a round trip to the broker),
# then abandons the batch: wait for that line, it comes later
abandoned() { running $pid_a $pid_z && grep -q "group: the sink refused the commit of batch $batch " "$WORK/z.err"; }
wait_for 120 abandoned
echo "Z tried to commit batch $batch (attempt $attempt) and was refused: ${line##*: }"

at_end() {
  running $pid_a $pid_z && $PY "$CHECK" offsets "$BROKERS" "$tag-g" "$tag-in" >/dev/null 2>&1
}
wait_secs 300 at_end
stop_all a z
if grep -h "membership consumer was handed" "$WORK"/[az].err; then
  fail "a membership consumer fetched records"
fi
grep -q "abandoned: fenced" "$WORK/ckpt-z/commits/$batch" ||
  fail "Z's checkpoint does not close batch $batch as abandoned"

$PY "$CHECK" output "$BROKERS" "$tag-out" "$WORK/records.jsonl" || fail "output"
seen=$(kcat -b "$BROKERS" -C -t "$tag-out" -e -q -X isolation.level=read_committed \
  -f '%h\n' 2>/dev/null | grep -c "sluice.attempt=$attempt\$" || true)
[ "$seen" = 0 ] || fail "$seen records of the refused attempt are visible to read_committed"
echo "ok: group zombie: Z's commit of batch $batch was refused after its partitions moved; the output is exact"
