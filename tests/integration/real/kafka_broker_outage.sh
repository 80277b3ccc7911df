#!/usr/bin/env bash
# A real broker killed (SIGKILL) mid-run and restarted on the same log
# directory, with the Kafka sink exactly-once: once while batch 2's records
# are being produced, once just before its commit_transaction. The test
# starts a broker of its own (the suite's shared one must stay up). Each
# moment is aimed with a crash point's `stop` action: the job stops there,
# the broker is killed, the job is resumed against the dead broker and the
# broker restarted. The job must ride through (the sink's retries), exit 0
# and leave an exact output, read read_committed.
source "$(dirname "$0")/../lib.bash" "$@"
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
BROKER_SH="$SRC/scripts/kafka-broker.sh"
BDIR="$WORK/broker"
COUNT=20000
broker_down() { bash "$BROKER_SH" stop "$BDIR" >/dev/null 2>&1 || true; }
trap 'broker_down; cleanup' EXIT
BROKERS=$(bash "$BROKER_SH" start --fresh "$BDIR" 2>"$WORK/broker.err") ||
  fail "own broker did not start: $(tail -5 "$WORK/broker.err")"
echo "own broker at $BROKERS"
create_topic in 4
"$SLUICE" produce --brokers "$BROKERS" --topic in --count $COUNT --seed 7 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
kcat -b "$BROKERS" -C -t in -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
  fail "kcat could not read the input back"

write_job() { # CELL
  create_topic "out$1" 4
  cat >"$WORK/$1.yaml" <<YAML
job: it-real-outage-$1
source:
  kafka:
    brokers: $BROKERS
    topics: [in]
    max_records_per_batch: 5000
    retry: { max_elapsed: 5m }
pipeline:
  - parse: json
  - filter: 'id % 10 != 7'
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
  - select: [id, user, cents]
sink:
  kafka:
    brokers: $BROKERS
    topic: out$1
    key: '{user}'
    exactly_once: true
    timeout: 10s
    retry: { attempts: 100, backoff: 200ms, max_backoff: 2s, max_elapsed: 5m }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1-ckpt }
workers: 2
YAML
}

stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }

cell=0
for p in sink.kafka.after_produce sink.kafka.after_send_offsets; do
  cell=$((cell + 1))
  write_job $cell
  SLUICE_FAILPOINTS="$p=stop@2" "$SLUICE" run "$WORK/$cell.yaml" --progress none \
    2>"$WORK/$cell.err" &
  pid=$!
  wait_for 120 stopped $pid
  grep -q "^sluice: failpoint $p fired: stop (hit 2)$" "$WORK/$cell.err" ||
    { cat "$WORK/$cell.err" >&2; fail "$p: the job stopped, but not at its crash point"; }
  bash "$BROKER_SH" kill "$BDIR" || fail "cannot kill the broker"
  kill -CONT $pid
  # The job now works against a dead broker; the restart reuses the log
  # directory and the ports.
  bash "$BROKER_SH" start "$BDIR" >/dev/null 2>"$WORK/broker.err" ||
    fail "the broker did not come back: $(tail -5 "$WORK/broker.err")"
  rc=0
  wait $pid || rc=$?
  [ "$rc" = 0 ] || { tail -20 "$WORK/$cell.err" >&2; fail "$p: the job exited $rc through the outage"; }
  $PY "$CHECK" output "$BROKERS" "out$cell" "$WORK/records.jsonl" || fail "$p: output"
  $PY "$CHECK" offsets "$BROKERS" "sluice-it-real-outage-$cell" in || fail "$p: group offsets"
  # The job met the dead broker: it was resumed after the broker died, and
  # it cannot finish batch 2 (offsets, commit) without it. librdkafka's
  # log usually shows it, but which lines it writes varies, so it is only
  # reported.
  met=$(sed -n "/failpoint $p fired/,\$p" "$WORK/$cell.err" |
    grep -Ec "Connection refused|brokers are down|Disconnected|transport failure" || true)
  echo "$p: $met log lines about the dead broker"
  echo "ok: broker killed at $p of batch 2 and restarted: exact"
done
echo "ok: real broker outages"
