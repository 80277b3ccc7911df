#!/usr/bin/env bash
# Kafka sink outages. The source is an embedded cluster inside the job (the
# same generated records at every start); the sink writes, exactly once, to
# a 3-broker `sluice mock-kafka --control`, whose brokers the test takes
# down and up (rd_kafka_mock_broker_set_down / set_up).
#  1. A broker down mid-run, up again: the batch's commit is retried with
#     backoff, the job keeps its place, the output is exact.
#  2. Every broker down for good: once sink.retry is spent the job exits 1
#     with a clear message; with the brokers back, a restart completes the
#     output, exactly.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --brokers 3 --topic out1:6 --topic out2:6 --topic clicks:8
# The control answers bad commands with an error line.
echo "sideways 2" >&4
read -r -t 30 -u 3 reply || fail "no answer from mock-kafka"
case $reply in "error: unknown command 'sideways 2'"*) ;; *) fail "unexpected answer: $reply" ;; esac

# write_job N RECORDS: job it-outage-N writing topic outN, ckpt-N.
write_job() {
  cat >"$WORK/job$1.yaml" <<YAML
job: it-outage-$1
source:
  kafka:
    brokers: embedded
    topics: [clicks]
    embedded: { partitions: 8, records: $2, seed: 4 }
    max_records_per_batch: 5000
pipeline:
  - parse: json
  - filter: 'id % 10 != 7'
  - select: [id, user]
sink:
  kafka:
    brokers: $BROKERS
    topic: out$1
    key: '{user}'
    exactly_once: true
    mirror_offsets: true
    timeout: 1s
    retry: { attempts: $3, backoff: 100ms, max_backoff: 500ms, max_elapsed: 60s }
# Paced, so that the outage lands while batches are still to come.
trigger: { interval: 250ms }
checkpoint: { dir: $WORK/ckpt-$1, retain: 1000000 }
workers: 2
YAML
}

check_output() { # N RECORDS
  kcat -b "$BROKERS" -C -t "out$1" -e -q -f '%h\t%k\t%s\n' >"$WORK/out$1.tsv" 2>"$WORK/kcat.err" ||
    fail "kcat: $(cat "$WORK/kcat.err")"
  python3 "$SRC/tests/integration/check_kafka_eos.py" attempts "$WORK/out$1.tsv" \
    "$2" 10 7 "$WORK/ckpt-$1"
}

# --- 1. broker 2 (leader of a third of out1's partitions) down, then up
write_job 1 100000 50
"$SLUICE" run "$WORK/job1.yaml" --progress none 2>"$WORK/run1.err" &
pid=$!
wait_for 60 test -e "$WORK/ckpt-1/commits/3"
# The mock picks each partition's leader at random: a fixed broker leads
# none of out1's 6 partitions about one time in 11, and its outage then
# fails no commit. Take down the leader of partition 0.
leader=$(kcat -b "$BROKERS" -L -t out1 -J 2>"$WORK/kcat.err" | python3 -c '
import json, sys
print(json.load(sys.stdin)["topics"][0]["partitions"][0]["leader"])') ||
  fail "kcat -L: $(cat "$WORK/kcat.err")"
mock_ctl down "$leader"
wait_for 60 grep -q "sink commit of batch [0-9]* failed (try 2)" "$WORK/run1.err"
mock_ctl up "$leader"
wait_for 60 test -e "$WORK/ckpt-1/commits/20" # 100 000 records / 5 000
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/run1.err" >&2; fail "the job exited $rc across a broker outage"; }
[ ! -e "$WORK/ckpt-1/commits/21" ] || fail "more than 20 batches"
grep -q "sink commit of batch [0-9]* succeeded after [0-9]* tries" "$WORK/run1.err" ||
  fail "no commit was retried: $(cat "$WORK/run1.err")"
grep "succeeded after" "$WORK/run1.err"
check_output 1 100000

# --- 2. all brokers down until the retry budget is spent
write_job 2 60000 4
"$SLUICE" run "$WORK/job2.yaml" --progress none 2>"$WORK/run2.err" &
pid=$!
wait_for 60 test -e "$WORK/ckpt-2/commits/2"
mock_ctl down -1
rc=0
wait "$pid" || rc=$? # bounded: 4 tries of 1 s, pauses under 1 s
mock_ctl up -1
[ "$rc" = 1 ] || { cat "$WORK/run2.err" >&2; fail "expected exit 1 once sink.retry was spent, got $rc"; }
grep -Eq "sink commit of batch [0-9]+ failed: gave up after 4 tries in [0-9.]+ s \(sink.retry limits\): Kafka sink: .*batch [0-9]+" "$WORK/run2.err" ||
  { cat "$WORK/run2.err" >&2; fail "no clear message when the retry budget was spent"; }
grep "gave up" "$WORK/run2.err"
expect_exit 0 "$SLUICE" run "$WORK/job2.yaml" --progress none --trigger available-now
check_output 2 60000
echo "ok: Kafka sink outages"
