#!/usr/bin/env bash
# The continuous trigger into Kafka with exactly_once: false: each group
# is written at once through the stream's own producer. Records produced
# while the job runs reach the output topic before their epoch commits
# (the epoch is 1 h here, so none commits until the stop), each once in a
# run without crashes; the stop commits the epoch.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic in:2 --topic out:2
out_count() {
  kcat -b "$BROKERS" -C -t out -e -q -f '%s\n' 2>/dev/null | grep -c . || true
}
out_at_least() { [ "$(out_count)" -ge "$1" ]; }
cat >"$WORK/job.yaml" <<YAML
job: it-cont-kafka
source:
  kafka: { brokers: $BROKERS, topics: [in], starting_offsets: earliest }
pipeline:
  - parse: json
  - select: [id, user]
sink:
  kafka: { brokers: $BROKERS, topic: out, key: '{user}' }
trigger: { continuous: 1h }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
"$SLUICE" run "$WORK/job.yaml" --progress none >"$WORK/run.out" 2>"$WORK/run.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams over 2 partitions" "$WORK/run.err"
"$SLUICE" produce --brokers "$BROKERS" --topic in --count 500 --seed 5 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
wait_for 60 out_at_least 500
[ "$(committed "$WORK/ckpt")" = 0 ] || fail "an epoch of 1h was committed early"
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { cat "$WORK/run.err" >&2; fail "SIGTERM: exit $rc"; }
[ "$(committed "$WORK/ckpt")" = 500 ] || fail "the stop did not commit the epoch ($(committed "$WORK/ckpt"))"
kcat -b "$BROKERS" -C -t out -e -q -f '%h\t%s\n' >"$WORK/out.tsv" 2>/dev/null
/usr/bin/python3 - "$WORK/out.tsv" <<'PY'
import json, sys
ids = []
for line in open(sys.argv[1]):
    hdr, val = line.rstrip("\n").split("\t", 1)
    assert "sluice.attempt=" in hdr and "sluice.batch" not in hdr, hdr
    ids.append(json.loads(val)["id"])
assert sorted(ids) == list(range(500)), (len(ids), sorted(set(range(500)) - set(ids))[:5])
print("ok: 500 records written at once, each once")
PY
echo "ok: continuous at-least-once Kafka writes records at once and commits the epoch at the stop"
