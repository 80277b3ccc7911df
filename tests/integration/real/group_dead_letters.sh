#!/usr/bin/env bash
# Group mode with dead letters on the real broker: the stateless job of
# group_scale_out (the Kafka sink, exactly_once) with dead_letter.kafka
# (exactly_once too), over 12 partitions holding records that are not
# JSON among the good ones. Instances A and B share them; B crashes
# (SIGKILL by its crash point) right after its third commit; C joins once
# that is proven. Each instance writes its dead letters with a
# transactional.id of its own (two instances with one would fence each
# other). When the group's offsets reach the end, A and C are stopped
# (SIGTERM, exit 0). The main output, read_committed, is every good row
# exactly once; the dead letters, read_committed, are exactly the bad
# records (each named by its partition and offset, with the parse error),
# at least once: a batch whose dead letters were committed and whose main
# commit the group then refused (a rebalance) is read again by the
# partition's next owner (docs/ARCHITECTURE.md, Group mode).
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
COUNT=12000
tag=it-real-gdl-$$
create_topic "$tag-in" 12
create_topic "$tag-out" 12
create_topic "$tag-dl" 1
# good records, three bad ones in every partition, more good ones
"$SLUICE" produce --brokers "$BROKERS" --topic "$tag-in" --count $((COUNT / 2)) --seed 5 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
for p in $(seq 0 11); do
  printf 'not json %d a\nnot json %d b\n{"id": broken %d\n' $p $p $p |
    kcat -b "$BROKERS" -P -t "$tag-in" -p $p 2>/dev/null || fail "kcat could not write the bad records"
done
"$SLUICE" produce --brokers "$BROKERS" --topic "$tag-in" --count $((COUNT / 2)) \
  --first $((COUNT / 2)) --seed 5 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
kcat -b "$BROKERS" -C -t "$tag-in" -e -q -f '%p %o %s\n' >"$WORK/all.txt" 2>/dev/null ||
  fail "kcat could not read the input back"
$PY - "$WORK" <<'PY' || fail "the input is not as written"
import json, sys
w = sys.argv[1]
good, bad = [], []
for line in open(w + "/all.txt"):
    p, o, v = line.rstrip("\n").split(" ", 2)
    try:
        json.loads(v)
        good.append(v)
    except ValueError:
        bad.append("%s %s" % (p, o))
assert len(good) == 12000 and len(bad) == 36, (len(good), len(bad))
open(w + "/records.jsonl", "w").write("\n".join(good) + "\n")
open(w + "/bad.txt", "w").write("\n".join(sorted(bad)) + "\n")
PY

group_kafka_job "$tag" 200 3000 "interval: 250ms" true "dead_letter:
  kafka: { brokers: '$BROKERS', topic: $tag-dl, exactly_once: true }"

FAIL_SHOW="$WORK/a.err $WORK/b.err $WORK/c.err"
start_instance a
pid_a=$!
start_instance b SLUICE_FAILPOINTS="batch.after_commit=crash@3"
pid_b=$!
b_exited() { running $pid_a && ! alive $pid_b; }
wait_for 180 b_exited
crashed b batch.after_commit 3
echo "B crashed after its third commit"
start_instance c
pid_c=$!
c_parts() { running $pid_a $pid_c && has_parts c; }
wait_for 120 c_parts
at_end() {
  running $pid_a $pid_c && $PY "$CHECK" offsets "$BROKERS" "$tag-g" "$tag-in" >/dev/null 2>&1
}
wait_secs 300 at_end
stop_all a c
for n in a b c; do
  tid=$(grep -o "transactional.id sluice-$tag-dead-letters-[0-9a-f]*" "$WORK/$n.err" | head -1 || true)
  [ -n "$tid" ] || fail "$n wrote no dead letters with a transactional.id of its own"
  eval "tid_$n=\${tid##* }"
done
[ "$tid_a" != "$tid_b" ] && [ "$tid_a" != "$tid_c" ] && [ "$tid_b" != "$tid_c" ] ||
  fail "two instances share the dead letters' transactional.id"

$PY "$CHECK" output "$BROKERS" "$tag-out" "$WORK/records.jsonl" || fail "output"
wait_settled "$tag-dl"
kcat -b "$BROKERS" -C -t "$tag-dl" -e -q -X isolation.level=read_committed -f '%s\n' \
  >"$WORK/dl.jsonl" 2>/dev/null || fail "kcat could not read the dead letters"
$PY - "$WORK" "$tag-in" <<'PY' || fail "dead letters"
import json, sys
w, topic = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(w + "/dl.jsonl") if l.strip()]
got = sorted({"%d %d" % (r["partition"], r["offset"]) for r in rows})
want = open(w + "/bad.txt").read().split("\n")[:-1]
assert got == sorted(want), (len(got), len(want), got[:3], want[:3])
assert all(r["topic"] == topic and "json" in r["reason"].lower() for r in rows), rows[0]
print("ok: %d dead letters for the %d bad records (%d written again after a refused commit)"
      % (len(rows), len(want), len(rows) - len(want)))
PY
echo "ok: group mode with dead letters: 3 instances, one crashed; the output exactly once, every bad record a dead letter"
