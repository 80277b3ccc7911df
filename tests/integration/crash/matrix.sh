#!/usr/bin/env bash
# The crash matrix: one exactly-once sink (file, redis or kafka) and one
# job kind (stateless, windowed, or merge: a window with output: merge,
# Redis only), crashed at every crash point that such a run passes, one
# point at a time.
#
# usage: matrix.sh SLUICE SRC SINK KIND [real]
#
# With `real`, the source (and the Kafka sink) is the suite's real Apache
# Kafka broker (the ctest fixture kafka_broker) instead of the embedded
# cluster, each cell with its own topics, and the Kafka sink runs with
# mirror_offsets off: its output is read as a user reads it, read_committed,
# without sluice's headers, and compared per partition as a multiset (a
# batch committed twice, or an aborted attempt shown, adds rows).
#
# 1. Calibration: one run with every applicable point armed as sleep(0),
#    which only announces each hit. Every point must be hit at least once
#    (a point the run stops passing turns the test red), and the committed
#    output must equal what output.py computes from the input records.
# 2. For each point P hit H times: a run armed with P=crash@ceil(H/2) must
#    die by SIGKILL (exit 137) after announcing that P fired; a restart,
#    unarmed, runs to the end; then the committed output, batch by batch,
#    must equal the calibration's: nothing lost, nothing twice.
# Each cell gets a fresh checkpoint and a fresh output (directory, topic
# or Redis database); the input is the same.
source "$(dirname "$0")/../lib.bash" "$@"
SINK=$3
KIND=$4
REAL=${5:-}
PY=/usr/bin/python3 # Debian's, which has python3-redis
OUTPUT="$SRC/tests/integration/crash/output.py"
COUNT=20000

# The points this run passes: every batch and checkpoint step, the window
# state's only for a windowed job, and the sink's own.
points=()
while read -r name _; do
  case $name in
    batch.after_state | checkpoint.state.*) [ "$KIND" = windowed ] && points+=("$name") ;;
    # The continuous trigger's points (streams, epochs): not passed by
    # these interval runs.
    sink.redis.stream.* | sink.redis.epoch.*) ;;
    batch.* | task.* | checkpoint.*) points+=("$name") ;;
    sink."$SINK".*) points+=("$name") ;;
  esac
done < <("$SLUICE" failpoints)
[ "${#points[@]}" -ge 15 ] || fail "sluice failpoints listed only ${#points[@]} points for $SINK"

# IN: the input topic; out_topic CELL: a cell's output topic.
if [ -n "$REAL" ]; then
  use_real_broker
  tag=it-real-crash-$SINK-$KIND-$$
  IN=$tag-in
  create_topic "$IN" 4
else
  tag=""
  IN=clicks
  topics=(--topic clicks:4)
  if [ "$SINK" = kafka ]; then
    for ((i = 0; i <= ${#points[@]}; i++)); do topics+=(--topic "out$i:4"); done
  fi
  start_mock "${topics[@]}"
fi
out_topic() { echo "${tag:+$tag-}out$1"; }
"$SLUICE" produce --brokers "$BROKERS" --topic "$IN" --count $COUNT --seed 7 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
kcat -b "$BROKERS" -C -t "$IN" -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
  fail "kcat could not read the input back"
[ "$(wc -l <"$WORK/records.jsonl")" = $COUNT ] || fail "kcat read $(wc -l <"$WORK/records.jsonl") records"
[ "$SINK" = redis ] && start_redis

# write_job CELL: $WORK/CELL.yaml, its checkpoint $WORK/CELL-ckpt.
write_job() {
  local cell=$1 pipeline sink
  if [ "$KIND" = stateless ]; then
    pipeline="
  - parse: json
  - filter: 'id % 10 != 7'
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
  - select: [id, user, cents]"
  else
    pipeline="
  - parse: json
  - filter: 'event == \"buy\" && amount > 0'
  - window:
      tumbling: 10s
      time: ts
      watermark: 1h
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count() }
      output: update"
  fi
  if [ "$KIND" = merge ]; then
    pipeline="
  - parse: json
  - filter: 'event == \"buy\" && amount > 0'
  - window:
      tumbling: 10s
      time: ts
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count(), hi: max(amount), lo: min(amount) }
      output: merge"
  fi
  case $SINK/$KIND in
    redis/merge) sink="redis:
    url: $REDIS_URL
    command:
      - HINCRBYFLOAT t:w:{user}:{window_start} revenue {revenue}
      - HINCRBY t:w:{user}:{window_start} orders {orders}
      - ZADD t:hi:{window_start} GT {hi} {user}
      - ZADD t:lo:{window_start} LT {lo} {user}" ;;
    file/*) sink="file: { path: $WORK/$cell-out }" ;;
    kafka/*)
      if [ -n "$REAL" ]; then
        create_topic "$(out_topic "$cell")" 4
        sink="kafka: { brokers: $BROKERS, topic: $(out_topic "$cell"), key: '{user}', exactly_once: true, timeout: 30s }"
      else
        sink="kafka: { brokers: $BROKERS, topic: out$cell, key: '{user}', exactly_once: true, mirror_offsets: true, timeout: 20s }"
      fi
      ;;
    redis/stateless) sink="redis:
    url: $REDIS_URL
    command:
      - SADD t:ids {id}
      - HINCRBY t:cents {user} {cents}
      - INCRBY t:records 1" ;;
    redis/windowed) sink="redis:
    url: $REDIS_URL
    command:
      - HSET t:w:{user}:{window_start} revenue {revenue} orders {orders}
      - INCRBY t:emitted 1" ;;
  esac
  cat >"$WORK/$cell.yaml" <<YAML
job: ${tag:-crash-$SINK-$KIND}-$cell
source:
  kafka:
    brokers: $BROKERS
    topics: [$IN]
    max_records_per_batch: 5000
    task_max_records: 1500
pipeline:$pipeline
sink:
  $sink
trigger: { available_now: true }
checkpoint: { dir: $WORK/$cell-ckpt, retain: 1000 }
workers: 2
YAML
}

# output VERB CELL: output.py VERB for CELL's output.
output() {
  case $SINK in
    file) $PY "$OUTPUT" "$1" file "$KIND" "$WORK/$2-out" ;;
    redis) $PY "$OUTPUT" "$1" redis "$KIND" "$REDIS_PORT" ;;
    kafka)
      if [ -n "$REAL" ]; then
        wait_settled "$(out_topic "$2")"
        kcat -b "$BROKERS" -C -t "$(out_topic "$2")" -e -q -X isolation.level=read_committed \
          -f '%p\t%k\t%s\n' >"$WORK/$2.tsv" 2>"$WORK/kcat.err" ||
          fail "kcat: $(cat "$WORK/kcat.err")"
        $PY "$OUTPUT" "$1" kafka-committed "$KIND" "$WORK/$2.tsv"
      else
        kcat -b "$BROKERS" -C -t "out$2" -e -q -f '%h\t%k\t%s\n' >"$WORK/$2.tsv" 2>"$WORK/kcat.err" ||
          fail "kcat: $(cat "$WORK/kcat.err")"
        $PY "$OUTPUT" "$1" kafka "$KIND" "$WORK/$2.tsv" "$WORK/$2-ckpt"
      fi
      ;;
  esac
}

# --- 1. calibration
cal=0
write_job $cal
spec=$(printf '%s=sleep(0);' "${points[@]}")
SLUICE_FAILPOINTS=$spec expect_exit 0 "$SLUICE" run "$WORK/$cal.yaml" --progress none
cp "$WORK/err.txt" "$WORK/calibration.err"
declare -A hits
missed=()
for p in "${points[@]}"; do
  hits[$p]=$(grep -c "^sluice: failpoint $p fired: sleep(0) (hit [0-9]*)$" "$WORK/calibration.err" || true)
  [ "${hits[$p]}" -gt 0 ] || missed+=("$p")
done
[ ${#missed[@]} -eq 0 ] || fail "the calibration run passed no ${missed[*]}"
output final $cal >"$WORK/final.json"
$PY "$OUTPUT" expect "$SINK" "$KIND" "$WORK/records.jsonl" >"$WORK/expect.json"
cmp -s "$WORK/final.json" "$WORK/expect.json" || {
  diff "$WORK/expect.json" "$WORK/final.json" | head -20 >&2
  fail "the calibration run's output differs from the one computed from the input"
}
output dump $cal >"$WORK/want.json"
batches=$(ls "$WORK/$cal-ckpt/commits" | grep -c '^[0-9]*$')
[ "$batches" -ge 4 ] || fail "the calibration run committed only $batches batches"
echo "calibration: $batches batches, output equals the reference; hits per point:"
for p in "${points[@]}"; do printf '  %-40s %s\n' "$p" "${hits[$p]}"; done

# --- 2. one crash per point
cell=0
for p in "${points[@]}"; do
  cell=$((cell + 1))
  [ "$SINK" = redis ] && rcli FLUSHALL >/dev/null
  write_job $cell
  n=$(((hits[$p] + 1) / 2))
  SLUICE_FAILPOINTS="$p=crash@$n" expect_exit 137 "$SLUICE" run "$WORK/$cell.yaml" --progress none
  expect_err "^sluice: failpoint $p fired: crash \(hit $n\)$"
  expect_exit 0 "$SLUICE" run "$WORK/$cell.yaml" --progress none
  output dump $cell >"$WORK/got.json"
  cmp -s "$WORK/want.json" "$WORK/got.json" || {
    diff "$WORK/want.json" "$WORK/got.json" | head -20 >&2
    fail "$p (crash at hit $n of ${hits[$p]}): the output after the restart differs from the uninterrupted run's"
  }
  echo "ok: $p crashed at hit $n of ${hits[$p]}; the restart committed exactly the uninterrupted output"
done
echo "ok: $SINK/$KIND${REAL:+ on the real broker}: ${#points[@]} crash points, each fired, nothing lost, nothing twice"
