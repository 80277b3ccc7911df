#!/usr/bin/env bash
# Group mode with the continuous trigger and the Kafka sink (exactly_once)
# on the real broker: each epoch is one transaction that carries the
# group's offsets with the membership's metadata. Instances A and B share
# 12 partitions while a producer writes; B crashes (SIGKILL by its crash
# point) right after its third epoch's commit; once that is proven, C
# starts and must be assigned partitions and run streams. When the
# producer has stopped and the group's offsets reach the end of every
# partition, A and C are stopped (SIGTERM, exit 0) and a read_committed
# consumer must find every row of the input exactly once.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
tag=it-real-gck-$$
create_topic "$tag-in" 12
create_topic "$tag-out" 12
group_kafka_job "$tag" 0 3000 "continuous: 250ms" true

start_producer "$tag-in" 3000 43
continuous_crash_and_join

stop_producer "$tag-in"
at_end() {
  running $pid_a $pid_c && $PY "$CHECK" offsets "$BROKERS" "$tag-g" "$tag-in" >/dev/null 2>&1
}
wait_secs 300 at_end
stop_all a c
if grep -h "membership consumer was handed" "$WORK"/[abc].err; then
  fail "a membership consumer fetched records"
fi
$PY "$CHECK" output "$BROKERS" "$tag-out" "$WORK/records.jsonl" || fail "output"
echo "ok: group mode, continuous, Kafka sink: 3 instances, one crashed after its third epoch, one joined later; $(wc -l <"$WORK/records.jsonl") records, every row exactly once"
