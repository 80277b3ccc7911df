#!/usr/bin/env bash
# Kafka exactly-once: 500 000 generated records through a job with the
# transactional Kafka sink, killed with SIGKILL at 20 random moments (after
# a batch, while a batch's records are produced, while its transaction
# commits) and restarted; at the end the committed output equals the
# expected output exactly.
#
# librdkafka 2.0.2's mock neither hides aborted transactions from
# read_committed consumers nor stores transactional offset commits, so on
# the mock the test reads every record with its sluice.batch and
# sluice.attempt headers, takes the committed attempt of each batch from
# the checkpoint (commits/N "sink"), and checks that each batch has exactly
# one and that the records of those attempts are the expected ones, each
# once. The sink runs with mirror_offsets there (see sinks/kafka/sink.c).
# With KAFKA_BROKERS set (a real Kafka that creates topics on first use),
# the same run is repeated against it and checked with a plain
# read_committed consumer.
source "$(dirname "$0")/../integration/lib.bash" "$@"
COUNT=${SLUICE_EOS_RECORDS:-500000}
KILLS=20
BATCHES=$((COUNT / 4000)) # max_records_per_batch
seed=${SLUICE_CRASH_SEED:-$RANDOM}
echo "crash seed: $seed (rerun with SLUICE_CRASH_SEED=$seed)"
RANDOM=$seed

# write_job NAME BROKERS IN OUT MIRROR: the job file $WORK/NAME.yaml.
write_job() {
  cat >"$WORK/$1.yaml" <<YAML
job: it-eos-$1
source:
  kafka:
    brokers: $2
    topics: [$3]
    max_records_per_batch: 4000
    task_max_records: 2000
pipeline:
  - parse: json
  - filter: 'id % 10 != 7'
  - select: [id, user]
sink:
  kafka:
    brokers: $2
    topic: $4
    key: '{user}'
    exactly_once: true
    mirror_offsets: $5
    timeout: 20s
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt-$1, retain: 1000000 }
workers: 2
YAML
}

# last_commit DIR: the newest batch in DIR/commits (0 when none).
last_commit() {
  local n
  n=$(ls "$1/commits" 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -1)
  echo "${n:-0}"
}

# crash_runs NAME: runs the job $KILLS times, each killed with SIGKILL at a
# random moment, then once to the end. Each kill point is drawn from where
# the job stands: with L the last committed batch, k = L + a random step
# (0 .. twice the batches left per kill left, so the kills spread over the
# whole run); after batch k committed (k = L: during start-up), or once
# the sink began producing or committing batch k+1; then a few ms more.
crash_runs() {
  local name=$1 job="$WORK/$1.yaml" ck="$WORK/ckpt-$1" killed=0 inside=0 i
  for ((i = 1; i <= KILLS; i++)); do
    local l span
    l=$(last_commit "$ck")
    span=$((2 * (BATCHES - l) / (KILLS - i + 1)))
    local k=$((l + RANDOM % (span > 0 ? span + 1 : 1))) phase=$((RANDOM % 3))
    k=$((k < BATCHES ? k : BATCHES - 1)) # a point the run reaches
    # A sink commit on the embedded cluster takes a few ms: kills aimed
    # at one wait 0-9 ms, the others 0-30 ms.
    local delay=$((phase == 0 ? RANDOM % 31 : RANDOM % 10)) log="$WORK/$name-run$i.err"
    local next=$((k + 1))
    "$SLUICE" run "$job" --progress none --log-level debug 2>"$log" &
    local pid=$!
    case $phase in
      0) [ "$k" -eq 0 ] || wait_until_or_exit "$pid" test -e "$ck/commits/$k" ;;
      1) wait_until_or_exit "$pid" logged_or_committed producing "$next" "$log" "$ck" ;;
      2) wait_until_or_exit "$pid" logged_or_committed committing "$next" "$log" "$ck" ;;
    esac
    sleep "0.0$(printf '%02d' "$delay")"
    if kill -9 "$pid" 2>/dev/null; then
      killed=$((killed + 1))
      # Inside a sink commit: its records were being produced and the
      # checkpoint had not recorded the batch yet.
      if [ "$phase" != 0 ] && [ ! -e "$ck/commits/$next" ]; then inside=$((inside + 1)); fi
    fi
    wait "$pid" 2>/dev/null || true
    grep -v '^sluice: debug: kafka: ' "$log" >>"$WORK/$name-runs.err" || true
  done
  echo "$name: killed $killed of $KILLS runs while running, $inside of them inside a sink commit; $(last_commit "$ck") batches committed by then"
  [ "$killed" -ge 15 ] || fail "only $killed runs were killed while running"
  # Where a random kill lands depends on the machine's speed: reported,
  # not required (the crash matrix aims at every point inside a commit).
  [ "$inside" -ge 1 ] || echo "note: no kill landed inside a sink commit this time"
  expect_exit 0 "$SLUICE" run "$job" --progress none
  echo "$name: $(last_commit "$ck") batches in all"
}

# logged_or_committed STEP N LOG CKPT: the run logged STEP for batch N, or
# batch N is committed already (a restart that finds batch N's transaction
# committed completes it without producing again: waiting for the line
# would let the run go to the end).
logged_or_committed() {
  grep -q "batch $2 attempt [0-9a-f.-]*: $1" "$3" || test -e "$4/commits/$2"
}

# wait_until_or_exit PID CMD...: waits (bounded, 60 s) until CMD succeeds
# or the process PID has exited.
wait_until_or_exit() {
  local pid=$1 n
  shift
  for ((n = 0; n < 6000; n++)); do
    "$@" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.01
  done
  fail "timed out waiting for: $*"
}

# --- the embedded cluster
start_mock --topic clicks:24 --topic out:24
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count "$COUNT" --seed 3 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
write_job mock "$BROKERS" clicks out true
crash_runs mock
kcat -b "$BROKERS" -C -t out -e -q -f '%h\t%k\t%s\n' >"$WORK/out-mock.tsv" 2>"$WORK/kcat.err" ||
  fail "kcat: $(cat "$WORK/kcat.err")"
# Retention of the mock must not have dropped anything the check needs.
for p in $(seq 0 23); do
  lo=$(kcat -b "$BROKERS" -Q -t "out:$p:-2" 2>/dev/null | awk '{print $NF}')
  [ "$lo" = 0 ] || fail "the mock dropped records of out[$p] (low watermark $lo): use more partitions"
done
python3 "$SRC/tests/integration/check_kafka_eos.py" attempts "$WORK/out-mock.tsv" \
  "$COUNT" 10 7 "$WORK/ckpt-mock"
# The moment no kill is likely to hit (it is short): the transaction of the
# last batch committed, the process died before commits/N. The restart
# completes commits/N from the sink's record, with the same attempt, and
# writes nothing.
last=$(last_commit "$WORK/ckpt-mock")
note=$(grep -o '"sink":[^,}]*' "$WORK/ckpt-mock/commits/$last")
rm "$WORK/ckpt-mock/commits/$last"
hw_before=$(kcat -b "$BROKERS" -C -t out -e -q -f '%o\n' | wc -l)
expect_exit 0 "$SLUICE" run "$WORK/mock.yaml" --progress none
expect_err "the sink already holds batch $last: completed its checkpoint commit"
[ "$(grep -o '"sink":[^,}]*' "$WORK/ckpt-mock/commits/$last")" = "$note" ] ||
  fail "commits/$last does not name the attempt the sink recorded ($note)"
hw_after=$(kcat -b "$BROKERS" -C -t out -e -q -f '%o\n' | wc -l)
[ "$hw_before" = "$hw_after" ] || fail "completing batch $last wrote $((hw_after - hw_before)) records"

# --- a real Kafka, when there is one
if [ -n "${KAFKA_BROKERS:-}" ]; then
  tag="sluice-it-eos-$$-$seed"
  "$SLUICE" produce --brokers "$KAFKA_BROKERS" --topic "$tag-in" --count "$COUNT" \
    --seed 3 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
  write_job real "$KAFKA_BROKERS" "$tag-in" "$tag-out" false
  crash_runs real
  kcat -b "$KAFKA_BROKERS" -C -t "$tag-out" -e -q -X isolation.level=read_committed \
    -f '%h\t%k\t%s\n' >"$WORK/out-real.tsv" || fail "kcat on $KAFKA_BROKERS"
  python3 "$SRC/tests/integration/check_kafka_eos.py" read_committed \
    "$WORK/out-real.tsv" "$COUNT" 10 7 "$WORK/ckpt-real"
fi
echo "ok: Kafka exactly-once across $KILLS SIGKILLs"
