#!/usr/bin/env bash
# Fencing: two instances of one job (same job id, so the same
# transactional.id; each with its own checkpoint directory, as on two
# machines). The older one stops producing and reports that it was fenced;
# the newer one takes over from the sink's record (rolling its checkpoint
# forward) and the output is exact.
#
# librdkafka 2.0.2's mock does not fence: InitProducerId gives every
# producer a new id and the old one stays valid. On the mock the test
# therefore plays the broker's part: it makes the older instance's next
# EndTxn fail with PRODUCER_FENCED (what a real broker answers once the
# newer instance's init_transactions bumped the epoch), waits for it to
# stop, then starts the newer one. With KAFKA_BROKERS set (a real Kafka that
# creates topics on first use), both instances run at once and the broker
# fences.
source "$(dirname "$0")/lib.bash" "$@"
COUNT=100000

write_job() { # NAME BROKERS IN OUT MIRROR
  cat >"$WORK/$1.yaml" <<YAML
job: it-fence-$1
source:
  kafka: { brokers: $2, topics: [$3], max_records_per_batch: 2000 }
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
trigger: { available_now: true }
checkpoint: { retain: 1000000 }
workers: 2
YAML
}

# check_fenced_instance NAME: the older instance exited 1 saying it was
# fenced, and wrote nothing after the batch it was fenced in.
check_fenced_instance() {
  local err="$WORK/$1-a.err"
  grep -q "fenced: another instance with transactional.id 'sluice-it-fence-$1' took over" "$err" ||
    { cat "$err" >&2; fail "the older instance did not report that it was fenced"; }
  grep -o "fenced: [^(]*" "$err" | head -1
  local last
  last=$(grep -o "batch [0-9]* attempt [0-9a-f.-]*: producing" "$err" | tail -1 | awk '{print $2}')
  [ -n "$last" ] || fail "the older instance never produced"
  # Its last batch is not in its checkpoint: the fenced commit failed.
  [ ! -e "$WORK/ckpt-$1-a/commits/$last" ] || fail "the fenced batch $last was committed"
  echo "$1: the older instance stopped in batch $last"
  FENCED_BATCH=$last
}

# --- the embedded cluster: the test fences the older instance
start_mock --topic clicks:8 --topic out:8
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count "$COUNT" --seed 6 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
write_job mock "$BROKERS" clicks out true
expect_exit 0 "$SLUICE" validate "$WORK/mock.yaml"
grep -q "sink kafka (exactly-once)" "$WORK/out.txt" || fail "validate: $(cat "$WORK/out.txt")"
"$SLUICE" run "$WORK/mock.yaml" --set checkpoint.dir="$WORK/ckpt-mock-a" \
  --progress none --log-level debug 2>"$WORK/mock-a.err" &
pid=$!
wait_for 60 test -e "$WORK/ckpt-mock-a/commits/5"
mock_ctl error EndTxn PRODUCER_FENCED
rc=0
wait "$pid" || rc=$?
[ "$rc" = 1 ] || { cat "$WORK/mock-a.err" >&2; fail "the fenced instance exited $rc, not 1"; }
check_fenced_instance mock
# Nothing of the older instance's run is in the topic past that batch.
kcat -b "$BROKERS" -C -t out -e -q -f '%h\n' >"$WORK/mock-a-hdrs.txt"
run_a=$(grep -o "attempt [0-9a-f]*-[0-9a-f]*" "$WORK/mock-a.err" | head -1 | awk '{print $2}')
over=$(grep "sluice.attempt=$run_a\." "$WORK/mock-a-hdrs.txt" |
  grep -o 'sluice.batch=[0-9]*' | cut -d= -f2 | awk -v f="$FENCED_BATCH" '$1 > f' | wc -l)
[ "$over" = 0 ] || fail "the fenced instance wrote $over records after batch $FENCED_BATCH"
# The newer instance: the sink's record is ahead of its empty checkpoint.
expect_exit 0 "$SLUICE" run "$WORK/mock.yaml" --set checkpoint.dir="$WORK/ckpt-mock-b" \
  --progress none
expect_err "the sink holds batch $((FENCED_BATCH - 1)), ahead of the checkpoint \(batch 0\): rolled the checkpoint forward"
kcat -b "$BROKERS" -C -t out -e -q -f '%h\t%k\t%s\n' >"$WORK/out-mock.tsv"
python3 "$SRC/tests/integration/check_kafka_eos.py" attempts "$WORK/out-mock.tsv" \
  "$COUNT" 10 7 "$WORK/ckpt-mock-a" "$WORK/ckpt-mock-b"

# --- a real Kafka: the newer instance's init_transactions fences
if [ -n "${KAFKA_BROKERS:-}" ]; then
  tag="sluice-it-fence-$$"
  "$SLUICE" produce --brokers "$KAFKA_BROKERS" --topic "$tag-in" --count "$COUNT" \
    --seed 6 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
  write_job real "$KAFKA_BROKERS" "$tag-in" "$tag-out" false
  "$SLUICE" run "$WORK/real.yaml" --set checkpoint.dir="$WORK/ckpt-real-a" \
    --progress none --log-level debug 2>"$WORK/real-a.err" &
  pid=$!
  wait_for 120 test -e "$WORK/ckpt-real-a/commits/5"
  "$SLUICE" run "$WORK/real.yaml" --set checkpoint.dir="$WORK/ckpt-real-b" \
    --progress none 2>"$WORK/real-b.err" &
  pid_b=$!
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 1 ] || { cat "$WORK/real-a.err" >&2; fail "the older instance exited $rc, not 1"; }
  check_fenced_instance real
  rc=0
  wait "$pid_b" || rc=$?
  [ "$rc" = 0 ] || { cat "$WORK/real-b.err" >&2; fail "the newer instance exited $rc"; }
  kcat -b "$KAFKA_BROKERS" -C -t "$tag-out" -e -q -X isolation.level=read_committed \
    -f '%h\t%k\t%s\n' >"$WORK/out-real.tsv" || fail "kcat on $KAFKA_BROKERS"
  python3 "$SRC/tests/integration/check_kafka_eos.py" read_committed \
    "$WORK/out-real.tsv" "$COUNT" 10 7 "$WORK/ckpt-real-a" "$WORK/ckpt-real-b"
fi
echo "ok: Kafka fencing"
