#!/usr/bin/env bash
# Kafka sink templates: a topic per record ('ev-{event}'), a key from a
# field and a value from fields and the record's source coordinates, in one
# transaction per batch; each input record lands once in the topic of its
# event. A topic template that renders empty stops the job clearly.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4 --topic ev-view:2 --topic ev-click:2 --topic ev-buy:2
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 2>/dev/null
cat >"$WORK/job.yaml" <<YAML
job: it-templates
source:
  kafka: { brokers: $BROKERS, topics: [clicks], max_records_per_batch: 5000 }
sink:
  kafka:
    brokers: $BROKERS
    topic: 'ev-{event}'
    key: '{user}'
    value: '{id}|{event}|{@topic}[{@partition}]@{@offset}'
    exactly_once: true
    mirror_offsets: true
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
YAML
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
kcat -b "$BROKERS" -C -t clicks -e -q -f '%p\t%o\t%s\n' >"$WORK/in.tsv"
for ev in view click buy; do
  kcat -b "$BROKERS" -C -t "ev-$ev" -e -q -f "ev-$ev\t%k\t%s\n"
done >"$WORK/out.tsv"
python3 - "$WORK/in.tsv" "$WORK/out.tsv" <<'PY'
import json, sys
src = {}
for line in open(sys.argv[1]):
    p, o, v = line.rstrip("\n").split("\t", 2)
    r = json.loads(v)
    src[r["id"]] = (r, p, o)
seen = set()
for line in open(sys.argv[2]):
    topic, key, value = line.rstrip("\n").split("\t", 2)
    rid = int(value.split("|", 1)[0])
    r, p, o = src[rid]
    assert topic == "ev-" + r["event"], (topic, r)
    assert key == r["user"], (key, r)
    assert value == "%d|%s|clicks[%s]@%s" % (rid, r["event"], p, o), value
    assert rid not in seen, rid
    seen.add(rid)
assert seen == set(src), (len(seen), len(src))
print("ok:", len(seen), "records in the topics of their events")
PY
# A topic template that renders empty: the job stops and says which record.
sed -i "s|topic: 'ev-{event}'|topic: '{nothing}'|; s|$WORK/ckpt|$WORK/ckpt2|; s|^job: .*|job: it-templates-empty|" "$WORK/job.yaml"
expect_exit 1 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_err "topic template '\{nothing\}' gave an empty or invalid topic for the record from clicks\[[0-9]\] at offset [0-9]+"
# Template mistakes are configuration errors with a position.
sed -i "s|topic: '{nothing}'|topic: 'ev-{event'|" "$WORK/job.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/job.yaml"
expect_err "job.yaml:[0-9]+:[0-9]+: template 'ev-\{event', column 4: '\{' without '\}'"
echo "ok: Kafka sink templates"
