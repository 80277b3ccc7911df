#!/usr/bin/env bash
# Dead letters to a Kafka topic: every record whose evaluation fails is
# there once, with the reason and its source coordinates; the others reach
# the sink.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4 --topic dead:1 --topic dead2:1
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 2>/dev/null
cat >"$WORK/job.yaml" <<YAML
job: it-dlq
source:
  kafka: { brokers: $BROKERS, topics: [clicks], max_records_per_batch: 5000 }
pipeline:
  - parse: json
  # to_int("u0042") fails: every record with id % 100 == 0 is a dead letter
  - filter: 'id % 100 != 0 || to_int(user) > 0'
sink:
  file: { path: $WORK/out }
dead_letter:
  kafka: { brokers: $BROKERS, topic: dead }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
YAML
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress json
dead=$(python3 -c '
import json, sys
print(sum(json.loads(l)["pipeline"]["numDeadLetterRows"] for l in open(sys.argv[1]) if l.startswith("{")))' "$WORK/err.txt")
[ "$dead" = 200 ] || fail "progress counts $dead dead letters, not 200"
kcat -b "$BROKERS" -C -t dead -e -q -f '%s\n' >"$WORK/dead.jsonl" 2>/dev/null
python3 - "$WORK/dead.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ids = sorted(json.loads(r["value"])["id"] for r in rows)
assert ids == list(range(0, 20000, 100)), (len(ids), ids[:5])
assert all("to_int" in r["reason"] and r["topic"] == "clicks" for r in rows), rows[0]
print("ok:", len(rows), "dead letters in Kafka")
PY
python3 - "$WORK/out" <<'PY'
import json, os, sys
n = sum(1 for f in os.listdir(sys.argv[1]) if f.startswith("part-")
        for _ in open(os.path.join(sys.argv[1], f)))
assert n == 19800, n
PY
# Exactly-once dead letters: their own transactions (transactional.id
# sluice-it-dlq-dead-letters, so they do not fence the main sink) commit
# with the batch; again 200, each once, with the batch header.
sed -i "s|topic: dead }|topic: dead2, exactly_once: true, mirror_offsets: true }|; s|$WORK/ckpt|$WORK/ckpt2|; s|path: $WORK/out|path: $WORK/out2|" "$WORK/job.yaml"
expect_exit 0 "$SLUICE" validate "$WORK/job.yaml"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
kcat -b "$BROKERS" -C -t dead2 -e -q -f '%h %s\n' >"$WORK/dead2.txt" 2>/dev/null
n=$(grep -c '^sluice.batch=[0-9]*,sluice.attempt=[0-9a-f.-]* {' "$WORK/dead2.txt" || true)
[ "$n" = 200 ] || fail "$n exactly-once dead letters with headers, not 200"
# Keys that belong to exactly_once are refused without it.
sed -i "s|exactly_once: true, mirror_offsets: true|mirror_offsets: true|" "$WORK/job.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/job.yaml"
expect_err "mirror_offsets applies only with exactly_once: true"
echo "ok: dead letters to Kafka"
