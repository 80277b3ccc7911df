#!/usr/bin/env bash
# The crash matrix of the continuous trigger: one exactly-once sink (file,
# redis or kafka) and one job kind (stateless; windowed: a tumbling window
# in update mode, run per epoch; merge, Redis only: a tumbling window with
# output: merge, each group's contribution merged into Redis at once),
# crashed at every crash point that a continuous run passes, one point at
# a time.
#
# usage: continuous.sh SLUICE SRC SINK [KIND]
#
# The input comes in two halves, so that a run has at least two epochs:
# the first half is in the topic before the job starts, the second is
# produced once the first is committed. A run ends when the checkpoint has
# committed every input record: the test then stops it with SIGTERM, which
# commits the last epoch and exits 0 (waiting for a condition, never for
# a time).
#
# 1. Calibration: every applicable point armed as sleep(0), which only
#    announces each hit. Every point must be hit, and the final output
#    must equal what output.py computes from the input records.
# 2. For each point P: a run armed with P=crash@1 must die by SIGKILL
#    (exit 137) after announcing that P fired; a restart, unarmed, reads
#    to the end of the input; the final output must again equal the
#    computed one: nothing lost, nothing twice. Epochs are cut by time, so
#    the comparison is of the final output, not epoch by epoch.
source "$(dirname "$0")/../lib.bash" "$@"
SINK=$3
KIND=${4:-stateless}
PY=/usr/bin/python3 # Debian's, which has python3-redis
OUTPUT="$SRC/tests/integration/crash/output.py"
HALF=2000
COUNT=$((2 * HALF))

# The points of a continuous stateless run's epochs: the lifecycle (an
# epoch is read before it is cut, so no read task runs), the streams' own
# and the sink's (for Redis its stream and epoch scripts). The
# checkpoint's file steps (checkpoint.*) are the same code under every
# trigger, and the interval matrix crashes each of them.
# A windowed job's rows come from each epoch's window phase, staged and
# committed with the epoch: its sink writes nothing at once (for Redis,
# MULTI/EXEC instead of the stream and epoch scripts).
points=()
while read -r name _; do
  case $name in
    task.*) ;;
    batch.after_state) [ "$KIND" = windowed ] && points+=("$name") ;;
    # The Redis sink's MULTI/EXEC batch commit: a stateless continuous run
    # writes through its stream scripts and commits each epoch with one.
    sink.redis.before_exec | sink.redis.after_exec) [ "$SINK/$KIND" = redis/windowed ] && points+=("$name") ;;
    # A merge job (output: merge) writes each group's contribution at once
    # through the stream scripts, as a stateless one.
    sink.redis.stream.* | sink.redis.epoch.*) [ "$SINK/$KIND" = redis/stateless ] || [ "$SINK/$KIND" = redis/merge ] && points+=("$name") ;;
    batch.* | stream.*) points+=("$name") ;;
    sink."$SINK".*) points+=("$name") ;;
  esac
done < <("$SLUICE" failpoints)
[ "${#points[@]}" -ge 8 ] || fail "sluice failpoints listed only ${#points[@]} points for $SINK"

topics=(--topic clicks:4)
for ((i = 0; i <= ${#points[@]}; i++)); do
  topics+=(--topic "in$i:4")
  [ "$SINK" = kafka ] && topics+=(--topic "out$i:4")
done
start_mock "${topics[@]}"
[ "$SINK" = redis ] && start_redis

# The input, made once: the same records go into every cell's topic.
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count $COUNT --seed 7 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
kcat -b "$BROKERS" -C -t clicks -e -q -f '%p\t%o\t%s\n' >"$WORK/all.tsv" 2>/dev/null ||
  fail "kcat could not read the input back"
[ "$(wc -l <"$WORK/all.tsv")" = $COUNT ] || fail "kcat read $(wc -l <"$WORK/all.tsv") records"
cut -f3 "$WORK/all.tsv" >"$WORK/records.jsonl"
$PY "$OUTPUT" expect "$SINK" "$KIND" "$WORK/records.jsonl" >"$WORK/expect.json"
# Each cell reads its own topic, filled in two halves from all.tsv (by
# partition, in offset order), with kcat as the producer.
cell_topic() { echo "in$1"; }
produce_half() { # CELL HALF(1|2)
  local topic part
  topic=$(cell_topic "$1")
  for part in 0 1 2 3; do
    awk -F'\t' -v p=$part '$1 == p' "$WORK/all.tsv" | cut -f3 >"$WORK/p$part.jsonl"
    local n
    n=$(wc -l <"$WORK/p$part.jsonl")
    if [ "$2" = 1 ]; then
      head -n $((n / 2)) "$WORK/p$part.jsonl"
    else
      tail -n +$((n / 2 + 1)) "$WORK/p$part.jsonl"
    fi | kcat -b "$BROKERS" -P -t "$topic" -p $part 2>"$WORK/kcat.err" ||
      fail "kcat -P: $(cat "$WORK/kcat.err")"
  done
}
# cell_ckpt CELL: the cell's checkpoint directory.
cell_ckpt() { echo "$WORK/$1-ckpt"; }
# The topic's records produced so far, as the sum of its high watermarks.
produced() {
  kcat -b "$BROKERS" -C -t "$(cell_topic "$1")" -e -q -f '.\n' 2>/dev/null | wc -l
}

write_job() {
  local cell=$1 sink
  case $SINK in
    file) sink="file: { path: $WORK/$cell-out }" ;;
    kafka) sink="kafka: { brokers: $BROKERS, topic: out$cell, key: '{user}', exactly_once: true, mirror_offsets: true, timeout: 20s }" ;;
    redis) sink="redis:
    url: $REDIS_URL
    command:
      - SADD t:ids {id}
      - HINCRBY t:cents {user} {cents}
      - INCRBY t:records 1" ;;
  esac
  local pipeline="
  - parse: json
  - filter: 'id % 10 != 7'
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
  - select: [id, user, cents]"
  if [ "$KIND" = windowed ]; then
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
    [ "$SINK" = redis ] && sink="redis:
    url: $REDIS_URL
    command:
      - HSET t:w:{user}:{window_start} revenue {revenue} orders {orders}
      - INCRBY t:emitted 1"
  fi
  if [ "$KIND" = merge ]; then
    # no state in sluice: each group's sums, counts, highest and lowest
    # amounts are merged into Redis with its positions
    pipeline="
  - parse: json
  - filter: 'event == \"buy\" && amount > 0'
  - window:
      tumbling: 10s
      time: ts
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count(), hi: max(amount), lo: min(amount) }
      output: merge"
    sink="redis:
    url: $REDIS_URL
    command:
      - HINCRBYFLOAT t:w:{user}:{window_start} revenue {revenue}
      - HINCRBY t:w:{user}:{window_start} orders {orders}
      - ZADD t:hi:{window_start} GT {hi} {user}
      - ZADD t:lo:{window_start} LT {lo} {user}"
  fi
  cat >"$WORK/$cell.yaml" <<YAML
job: crash-continuous-$SINK-$KIND-$cell
source:
  kafka:
    brokers: $BROKERS
    topics: [$(cell_topic "$cell")]
    starting_offsets: earliest
pipeline:$pipeline
sink:
  $sink
trigger: { continuous: 50ms }
checkpoint: { dir: $WORK/$cell-ckpt, retain: 1000 }
workers: 2
YAML
}

# run_to_end CELL [VAR=VALUE]: runs the cell's job in the background until
# it has committed the whole input (producing the second half once the
# first is committed, when that is not done yet), then stops it with
# SIGTERM; it must exit 0. Its stderr is $WORK/CELL-run.err.
run_to_end() {
  local cell=$1 pid rc=0
  env ${2:+"$2"} "$SLUICE" run "$WORK/$cell.yaml" --progress none \
    >"$WORK/$cell-run.out" 2>"$WORK/$cell-run.err" &
  pid=$!
  FAIL_SHOW="$WORK/$cell-run.err"
  if [ "$(produced "$cell")" -lt $COUNT ]; then
    wait_committed 120 "$(cell_ckpt "$cell")" "$(produced "$cell")"
    produce_half "$cell" 2
  fi
  wait_committed 120 "$(cell_ckpt "$cell")" $COUNT
  kill -TERM $pid
  wait $pid || rc=$?
  [ $rc = 0 ] || {
    tail -n 30 "$WORK/$cell-run.err" >&2
    fail "cell $cell: the run stopped by SIGTERM exited $rc"
  }
}

final() {
  case $SINK in
    file) $PY "$OUTPUT" final file "$KIND" "$WORK/$1-out" ;;
    redis) $PY "$OUTPUT" final redis "$KIND" "$REDIS_PORT" ;;
    kafka)
      kcat -b "$BROKERS" -C -t "out$1" -e -q -f '%h\t%k\t%s\n' >"$WORK/$1.tsv" 2>"$WORK/kcat.err" ||
        fail "kcat: $(cat "$WORK/kcat.err")"
      $PY "$OUTPUT" final kafka "$KIND" "$WORK/$1.tsv" "$WORK/$1-ckpt"
      ;;
  esac
}

check_final() { # CELL WHAT
  final "$1" >"$WORK/got.json"
  cmp -s "$WORK/expect.json" "$WORK/got.json" || {
    diff "$WORK/expect.json" "$WORK/got.json" | head -20 >&2
    fail "$2: the final output differs from the one computed from the input"
  }
}

# --- 1. calibration
cal=0
write_job $cal
produce_half $cal 1
spec=$(printf '%s=sleep(0);' "${points[@]}")
run_to_end $cal "SLUICE_FAILPOINTS=$spec"
declare -A hits
missed=()
for p in "${points[@]}"; do
  hits[$p]=$(grep -c "^sluice: failpoint $p fired: sleep(0) (hit [0-9]*)$" "$WORK/$cal-run.err" || true)
  [ "${hits[$p]}" -gt 0 ] || missed+=("$p")
done
[ ${#missed[@]} -eq 0 ] || fail "the calibration run passed no ${missed[*]}"
check_final $cal "the calibration run"
epochs=$(ls "$WORK/$cal-ckpt/commits" | grep -c '^[0-9]*$')
[ "$epochs" -ge 2 ] || fail "the calibration run committed only $epochs epochs"
echo "calibration: $epochs epochs, output equals the reference; hits per point:"
for p in "${points[@]}"; do printf '  %-40s %s\n' "$p" "${hits[$p]}"; done

# --- 2. one crash per point
cell=0
for p in "${points[@]}"; do
  cell=$((cell + 1))
  [ "$SINK" = redis ] && rcli FLUSHALL >/dev/null
  write_job $cell
  produce_half $cell 1
  SLUICE_FAILPOINTS="$p=crash@1" expect_exit 137 timeout 120 "$SLUICE" run "$WORK/$cell.yaml" --progress none
  expect_err "^sluice: failpoint $p fired: crash \(hit 1\)$"
  run_to_end $cell
  check_final $cell "$p (crash at its first hit)"
  echo "ok: $p crashed at its first hit; the restart committed exactly the input's output"
done
echo "ok: continuous $SINK/$KIND: ${#points[@]} crash points, each fired, nothing lost, nothing twice"
