#!/usr/bin/env bash
# The continuous trigger: what validate refuses, records printed as they
# arrive, a stop that commits the last epoch, and a job that switches
# between the available-now, continuous and interval triggers on one
# checkpoint with its output exactly once; Redis applies records at once,
# and a restart whose epoch was never committed applies none twice.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4 --topic live:2 --topic rlive:2


# --- validate
cat >"$WORK/both.yaml" <<YAML
job: it-cont-both
source:
  kafka: { brokers: $BROKERS, topics: [clicks] }
sink:
  console: {}
trigger:
  interval: 1s
  continuous: 100ms
YAML
expect_exit 78 "$SLUICE" validate "$WORK/both.yaml"
expect_err "both.yaml:8:15: trigger: continuous is a trigger of its own; remove interval and available_now"
cat >"$WORK/win.yaml" <<YAML
job: it-cont-win
source:
  kafka: { brokers: $BROKERS, topics: [clicks] }
pipeline:
  - parse: json
  - window: { tumbling: 10s, time: ts, group_by: [user], aggregate: { n: count() } }
sink:
  console: {}
trigger: { continuous: 100ms }
YAML
expect_exit 0 "$SLUICE" validate "$WORK/win.yaml"
echo "ok: validate refuses both triggers at once and takes a window"

MPORT=$(free_port)
# metric NAME: its value in /metrics.
metric() {
  curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
# --- per record: the console prints each record as it arrives, with no
# batch header; a record produced while the job runs shows up (bounded
# wait: a generous bound, the benchmark holds the latency target).
cat >"$WORK/console.yaml" <<YAML
job: it-cont-console
source:
  kafka: { brokers: $BROKERS, topics: [live], starting_offsets: earliest }
sink:
  console: {}
trigger: { continuous: 1h }
checkpoint: { dir: $WORK/console-ckpt }
workers: 2
metrics: { listen: 127.0.0.1:$MPORT }
YAML
"$SLUICE" run "$WORK/console.yaml" --progress none >"$WORK/console.out" 2>"$WORK/console.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams over 2 partitions" "$WORK/console.err"
for i in 1 2 3; do
  echo "{\"n\":$i}" | kcat -b "$BROKERS" -P -t live -p $((i % 2)) 2>/dev/null
  wait_for 10 grep -qx "{\"n\":$i}" "$WORK/console.out"
done
# The epoch (1 h) was not cut: nothing is committed yet.
[ "$(committed "$WORK/console-ckpt")" = 0 ] || fail "an epoch of 1h was committed early"
# A record is counted in the latency histogram after the sink printed it:
# wait for the count, it may come just after the third line.
lat3() { running $pid && [ "$(metric sluice_record_latency_seconds_count)" = 3 ]; }
wait_for 10 lat3
[ "$(metric sluice_records_in_flight)" = 3 ] ||
  fail "sluice_records_in_flight is '$(metric sluice_records_in_flight)', not 3"
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { cat "$WORK/console.err" >&2; fail "SIGTERM: exit $rc"; }
grep -q "Batch:" "$WORK/console.out" && fail "the console printed a batch header in continuous mode"
[ "$(grep -c '^{"n":' "$WORK/console.out")" = 3 ] || fail "the console did not print 3 records"
# The stop committed the epoch: a restart prints nothing again.
[ "$(committed "$WORK/console-ckpt")" = 3 ] || fail "the stop did not commit the last epoch"
echo "ok: records printed as they arrive; the stop committed the last epoch"

# --- Redis: each record is applied at once (the epoch of 1 h is never
# cut); the job is then SIGKILLed with nothing committed, and the restart
# applies none of them twice: it resumes at the positions stored with the
# writes (the sink's record; the same positions guard HINCRBY against a
# replay, tests/integration/crash/continuous.sh).
start_redis
cat >"$WORK/redis.yaml" <<YAML
job: it-cont-redis
source:
  kafka: { brokers: $BROKERS, topics: [rlive], starting_offsets: earliest }
pipeline:
  - parse: json
sink:
  redis:
    url: $REDIS_URL
    command:
      - HINCRBY t:sum {k} {n}
      - INCRBY t:records 1
trigger: { continuous: 1h }
checkpoint: { dir: $WORK/redis-ckpt }
workers: 2
YAML
redis_has() { [ "$(rcli GET t:records)" = "$1" ]; }
"$SLUICE" run "$WORK/redis.yaml" --progress none >/dev/null 2>"$WORK/redis.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams over 2 partitions" "$WORK/redis.err"
for i in 1 2 3 4; do
  echo "{\"k\":\"k$((i % 2))\",\"n\":$i}" | kcat -b "$BROKERS" -P -t rlive -p $((i % 2)) 2>/dev/null
  wait_for 10 redis_has $i
done
[ "$(committed "$WORK/redis-ckpt")" = 0 ] || fail "an epoch of 1h was committed early"
kill -KILL $pid
wait $pid 2>/dev/null || true
"$SLUICE" run "$WORK/redis.yaml" --progress none >/dev/null 2>"$WORK/redis2.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams over 2 partitions" "$WORK/redis2.err"
grep -q "2 partitions resumed from the sink's positions .*: rlive\[0\] at 2 (checkpoint: none), rlive\[1\] at 2 (checkpoint: none)" \
  "$WORK/redis2.err" || { cat "$WORK/redis2.err" >&2; fail "the restart did not resume at the sink's positions"; }
echo '{"k":"k1","n":5}' | kcat -b "$BROKERS" -P -t rlive -p 1 2>/dev/null
wait_for 10 redis_has 5
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { cat "$WORK/redis2.err" >&2; fail "redis, SIGTERM: exit $rc"; }
[ "$(rcli HGET t:sum k0)" = 6 ] && [ "$(rcli HGET t:sum k1)" = 9 ] ||
  fail "t:sum is $(rcli HGETALL t:sum | tr '\n' ' '), not k0=6 k1=9"
[ "$(committed "$WORK/redis-ckpt")" = 5 ] || fail "the stop did not commit the last epoch"
echo "ok: Redis applies each record at once; a restart after SIGKILL applies none twice"

# --- Redis down: the stream that holds new records retries its write, so
# no epoch past them is cut or committed; once Redis is back the records
# are applied once and the epochs commit.
sed -i 's/continuous: 1h/continuous: 20ms/' "$WORK/redis.yaml"
"$SLUICE" run "$WORK/redis.yaml" --progress none >/dev/null 2>"$WORK/redis3.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams over 2 partitions" "$WORK/redis3.err"
stop_redis
for i in 6 7; do
  echo "{\"k\":\"k$((i % 2))\",\"n\":$i}" | kcat -b "$BROKERS" -P -t rlive -p $((i % 2)) 2>/dev/null
done
wait_for 30 grep -qs "sink write failed" "$WORK/redis3.err"
[ "$(committed "$WORK/redis-ckpt")" = 5 ] ||
  fail "with Redis down the checkpoint moved to $(committed "$WORK/redis-ckpt")"
start_redis
wait_for 60 redis_has 7
wait_committed 60 "$WORK/redis-ckpt" 7
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { cat "$WORK/redis3.err" >&2; fail "redis outage, SIGTERM: exit $rc"; }
[ "$(rcli HGET t:sum k0)" = 12 ] && [ "$(rcli HGET t:sum k1)" = 16 ] ||
  fail "after the outage t:sum is $(rcli HGETALL t:sum | tr '\n' ' '), not k0=12 k1=16"
echo "ok: with Redis down no epoch commits past the unwritten records; after it, each is applied once"

# --- switching triggers on one checkpoint: available-now, continuous,
# interval (which stops by SIGTERM too), file sink, exactly once.
job() { # TRIGGER
  cat >"$WORK/file.yaml" <<YAML
job: it-cont-switch
source:
  kafka: { brokers: $BROKERS, topics: [clicks], max_records_per_batch: 3000 }
sink:
  file: { path: $WORK/out }
trigger: $1
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
}
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 10000 --seed 3 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
job "{ available_now: true }"
expect_exit 0 "$SLUICE" run "$WORK/file.yaml" --progress none
[ "$(committed "$WORK/ckpt")" = 10000 ] || fail "available-now committed $(committed "$WORK/ckpt")"
job "{ continuous: 20ms }"
"$SLUICE" run "$WORK/file.yaml" --progress none >/dev/null 2>"$WORK/cont.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams" "$WORK/cont.err"
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 10000 --first 10000 \
  --seed 3 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
wait_committed 60 "$WORK/ckpt" 20000
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { cat "$WORK/cont.err" >&2; fail "continuous, SIGTERM: exit $rc"; }
epochs=$(ls "$WORK/ckpt/commits" | grep -c '^[0-9]*$')
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 10000 --first 20000 \
  --seed 3 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
job "{ interval: 10ms }"
"$SLUICE" run "$WORK/file.yaml" --progress none >/dev/null 2>"$WORK/int.err" &
pid=$!
wait_committed 60 "$WORK/ckpt" 30000
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { cat "$WORK/int.err" >&2; fail "interval, SIGTERM: exit $rc"; }
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 30000
echo "ok: available-now, continuous ($epochs batches and epochs so far), interval on one checkpoint: every record exactly once"
