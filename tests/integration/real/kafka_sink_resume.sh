#!/usr/bin/env bash
# The Kafka sink (exactly_once, mirror_offsets off) on the real broker: a
# stateless job runs over the first half of the input; its checkpoint
# directory is deleted; the restart, with an empty checkpoint directory,
# resumes every partition at the offset the sink's transactions committed
# to the group sluice-<job> (the sink's positions), not at
# starting_offsets (earliest here, which would write the first half
# again). The output, read read_committed (check_eos.py), holds every row
# of the whole input exactly once, and the group ends at the input's end.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
HALF=8000
tag=it-real-resume-$$
create_topic "$tag-in" 4
create_topic "$tag-out" 4
produce() { # produce FIRST: HALF records with ids from FIRST
  "$SLUICE" produce --brokers "$BROKERS" --topic "$tag-in" --count $HALF \
    --first "$1" --seed 11 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
}
# The stateless job of the crash matrix, which check_eos.py knows.
cat >"$WORK/job.yaml" <<YAML
job: $tag
source:
  kafka:
    brokers: $BROKERS
    topics: [$tag-in]
    starting_offsets: earliest
    max_records_per_batch: 3000
pipeline:
  - parse: json
  - filter: 'id % 10 != 7'
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
  - select: [id, user, cents]
sink:
  kafka:
    brokers: $BROKERS
    topic: $tag-out
    key: '{user}'
    exactly_once: true
    timeout: 30s
    properties: { linger.ms: 0 }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML

# --- the first half
produce 0
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
[ "$(committed "$WORK/ckpt")" = $HALF ] || fail "the first run committed $(committed "$WORK/ckpt") records"
# What the sink's transactions committed to the group: the positions.
$PY - "$BROKERS" "sluice-$tag" "$tag-in" >"$WORK/positions.txt" <<'PY' || fail "cannot read the group's offsets"
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "isolation.level": "read_committed", "enable.auto.commit": False})
md = c.list_topics(sys.argv[3], timeout=30).topics[sys.argv[3]]
got = c.committed([TopicPartition(sys.argv[3], p) for p in sorted(md.partitions)], timeout=30)
for tp in got:
    print("%s[%d] at %d" % (tp.topic, tp.partition, tp.offset))
c.close()
PY
[ "$(wc -l <"$WORK/positions.txt")" = 4 ] || fail "the group holds $(wc -l <"$WORK/positions.txt") offsets"

# --- the checkpoint directory deleted; the second half
rm -rf "$WORK/ckpt"
produce $HALF
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress json
expect_err "the sink holds batch [0-9]+, ahead of the checkpoint \(batch 0\): rolled the checkpoint forward to the sink's positions"
expect_err "4 partitions resumed from the sink's positions in the committed offsets of group 'sluice-$tag'"
while read -r pos; do
  grep -qF "$pos (checkpoint: none)" "$WORK/err.txt" || { cat "$WORK/err.txt" >&2; fail "the log does not say $pos"; }
done <"$WORK/positions.txt"
rows=$(grep '^{' "$WORK/err.txt" | $PY -c 'import json, sys; print(sum(json.loads(l)["numInputRows"] for l in sys.stdin))')
[ "$rows" = $HALF ] || fail "the restart read $rows records, not the second half's $HALF"

# --- the output, as a user reads it
kcat -b "$BROKERS" -C -t "$tag-in" -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
  fail "kcat could not read the input back"
[ "$(wc -l <"$WORK/records.jsonl")" = $((2 * HALF)) ] || fail "kcat read $(wc -l <"$WORK/records.jsonl") records"
$PY "$CHECK" output "$BROKERS" "$tag-out" "$WORK/records.jsonl" || fail "output"
$PY "$CHECK" offsets "$BROKERS" "sluice-$tag" "$tag-in" || fail "group offsets"
echo "ok: Kafka sink on the real broker: the checkpoint deleted, the restart resumed at the group's offsets; every row once"
