#!/usr/bin/env bash
# A job whose checkpoint directory is deleted resumes each partition at the
# position the Redis sink's record holds (the o:<topic>:<partition> fields
# of sluice:<job>:commit), not at starting_offsets:
#  1. interval trigger: the first half, a stop, the checkpoint deleted, the
#     second half; the restart reads exactly the second half, from the
#     positions, and every record is applied once (HINCRBY, INCRBY, SADD);
#  2. the same under `continuous: 100ms`, the restart with starting_offsets
#     latest (without the positions it would skip the second half);
#  3. continuous, SIGKILLed before its first epoch commit: the sink holds
#     positions and no batch, and the restart (latest again) resumes there
#     and records them in the checkpoint before any new record arrives;
#  4. a windowed job in the same situation is refused: its window state
#     was in the deleted directory; clearing the sink's record starts it
#     over;
#  5. continuous with dead letters, SIGKILLed before its first epoch: the
#     streams' positions are past records whose dead letters were never
#     committed, so the restart does not take them (the dead letters' own
#     record bounds them): every dead letter is written, once.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4 --topic mixed:2
start_redis
HALF=6000
NEXT=0
produce() { # produce COUNT: ids go on from the previous call
  "$SLUICE" produce --brokers "$BROKERS" --topic clicks --count "$1" \
    --first "$NEXT" --seed 5 2>"$WORK/produce.err" ||
    fail "produce: $(cat "$WORK/produce.err")"
  NEXT=$((NEXT + $1))
}
produce $HALF

# job NAME TRIGGER: $WORK/NAME.yaml, job it-resume-NAME, keys NAME:*.
job() {
  cat >"$WORK/$1.yaml" <<YAML
job: it-resume-$1
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 2500
pipeline:
  - parse: json
sink:
  redis:
    url: $REDIS_URL
    command:
      - HINCRBY $1:users {user} 1
      - INCRBY $1:records 1
      - SADD $1:ids {id}
trigger: $2
checkpoint: { dir: $WORK/$1-ckpt }
workers: 2
YAML
}
has() { [ "$(rcli GET "$1:records")" = "$2" ]; }

# check NAME: every record of the topic applied once: the counter and the
# set size equal the records, and each user's count is its records'.
check() {
  kcat -b "$BROKERS" -C -t clicks -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
    fail "kcat could not read the input"
  [ "$(wc -l <"$WORK/records.jsonl")" = "$NEXT" ] || fail "the topic holds $(wc -l <"$WORK/records.jsonl") records, not $NEXT"
  [ "$(rcli GET "$1:records")" = "$NEXT" ] || fail "$1: records counter $(rcli GET "$1:records"), expected $NEXT"
  [ "$(rcli SCARD "$1:ids")" = "$NEXT" ] || fail "$1: $(rcli SCARD "$1:ids") ids, expected $NEXT"
  rcli HGETALL "$1:users" >"$WORK/users.txt"
  python3 - "$WORK/records.jsonl" "$WORK/users.txt" <<'PY' || fail "$1: per-user counts differ"
import collections, json, sys
want = collections.Counter(json.loads(l)["user"] for l in open(sys.argv[1]))
f = open(sys.argv[2]).read().split("\n")
got = {f[i]: int(f[i + 1]) for i in range(0, len(f) - 1, 2)}
if got != dict(want):
    bad = [u for u in set(got) | set(want) if got.get(u) != want.get(u)][:5]
    sys.exit("users differ, e.g. " + ", ".join("%s %s/%s" % (u, got.get(u), want.get(u)) for u in bad))
PY
}

# positions NAME: the o: fields of the job's commit record, "clicks[p]=off"
# sorted.
positions() {
  rcli HGETALL "sluice:it-resume-$1:commit" | paste - - |
    awk -F'\t' '$1 ~ /^o:/ { n = split($1, f, ":"); printf "%s[%s]=%s\n", f[2], f[3], $2 }' | sort
}

# resumed ERRFILE POSITIONS: the run logged that every partition resumed
# from the sink at POSITIONS, and its batches (progress JSON) read exactly
# the second half, starting there.
resumed() {
  grep -q "4 partitions resumed from the sink's positions in the hash sluice:it-resume-[a-z0-9]*:commit" "$1" ||
    { cat "$1" >&2; fail "no log line of the partitions resumed from the sink"; }
  local p
  for p in $2; do
    grep -qF "${p%%=*} at ${p#*=} (checkpoint: none)" "$1" ||
      { cat "$1" >&2; fail "the log does not say ${p%%=*} resumed at ${p#*=}"; }
  done
  python3 - "$1" "$2" "$HALF" <<'PY' || fail "the restart did not read exactly the second half from the positions"
import json, sys
starts, rows = {}, 0
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    b = json.loads(line)
    rows += b["numInputRows"]
    for topic, parts in b["sources"][0]["startOffset"].items():
        for p, o in parts.items():
            k = "%s[%s]" % (topic, p)
            starts[k] = min(starts.get(k, o), o)
want = dict(x.split("=") for x in sys.argv[2].split())
want = {k: int(v) for k, v in want.items()}
if rows != int(sys.argv[3]):
    sys.exit("the restart read %d records, not %s" % (rows, sys.argv[3]))
if starts != want:
    sys.exit("the restart started at %s, not at the sink's %s" % (starts, want))
PY
}

# stop PID ERRFILE: SIGTERM, exit 0.
stop() {
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  [ $rc = 0 ] || { cat "$2" >&2; fail "SIGTERM: exit $rc"; }
}

# --- 1. interval
job int "{ interval: 20ms }"
"$SLUICE" run "$WORK/int.yaml" --progress none 2>"$WORK/int1.err" &
pid=$!
wait_committed 60 "$WORK/int-ckpt" $HALF
stop $pid "$WORK/int1.err"
has int $HALF || fail "int: the first half was not applied"
pos=$(positions int)
[ "$(echo "$pos" | wc -l)" = 4 ] || fail "int: the commit record holds $(echo "$pos" | wc -l) positions"
rm -rf "$WORK/int-ckpt"
produce $HALF
"$SLUICE" run "$WORK/int.yaml" --progress json 2>"$WORK/int2.err" &
pid=$!
wait_committed 60 "$WORK/int-ckpt" $((2 * HALF))
stop $pid "$WORK/int2.err"
check int
resumed "$WORK/int2.err" "$pos"
echo "ok: interval: the checkpoint deleted, the restart read the second half from the sink's positions; each record once"

# --- 2. continuous, stopped; the restart with starting_offsets latest
job cont "{ continuous: 100ms }"
"$SLUICE" run "$WORK/cont.yaml" --progress none 2>"$WORK/cont1.err" &
pid=$!
wait_for 60 has cont $NEXT
stop $pid "$WORK/cont1.err"
pos=$(positions cont)
rm -rf "$WORK/cont-ckpt"
produce $HALF
"$SLUICE" run "$WORK/cont.yaml" --progress json \
  --set source.kafka.starting_offsets=latest 2>"$WORK/cont2.err" &
pid=$!
wait_for 60 has cont $NEXT
stop $pid "$WORK/cont2.err"
check cont
resumed "$WORK/cont2.err" "$pos"
echo "ok: continuous: the checkpoint deleted, the restart (starting_offsets latest) resumed at the sink's positions; each record once"

# --- 3. continuous, SIGKILLed before any epoch commit: positions, no batch
job kill "{ continuous: 1h }"
"$SLUICE" run "$WORK/kill.yaml" --progress none 2>"$WORK/kill1.err" &
pid=$!
wait_for 60 has kill $NEXT
kill -KILL $pid
wait $pid 2>/dev/null || true
[ -z "$(rcli HGET sluice:it-resume-kill:commit batch)" ] || fail "kill: an epoch of 1h was committed"
pos=$(positions kill)
[ "$(echo "$pos" | wc -l)" = 4 ] || fail "kill: the streams stored $(echo "$pos" | wc -l) positions"
rm -rf "$WORK/kill-ckpt"
sed -i 's/continuous: 1h/continuous: 100ms/' "$WORK/kill.yaml"
"$SLUICE" run "$WORK/kill.yaml" --progress json \
  --set source.kafka.starting_offsets=latest 2>"$WORK/kill2.err" &
pid=$!
# Nothing new yet: a batch without records records the positions in the
# checkpoint, which would otherwise stay empty until a record arrives.
wait_committed 60 "$WORK/kill-ckpt" $NEXT
grep -q "batch 1 records the positions taken from the sink in the checkpoint (no records)" "$WORK/kill2.err" ||
  fail "kill: no batch recorded the positions"
produce $HALF
wait_for 60 has kill $NEXT
stop $pid "$WORK/kill2.err"
check kill
resumed "$WORK/kill2.err" "$pos"
echo "ok: continuous, SIGKILLed before its first epoch: the restart resumed at the positions the streams stored"

# --- 4. a windowed job: the window state was in the deleted directory
cat >"$WORK/win.yaml" <<YAML
job: it-resume-win
source:
  kafka: { brokers: $BROKERS, topics: [clicks], max_records_per_batch: 5000 }
pipeline:
  - parse: json
  - window:
      tumbling: 10s
      time: ts
      watermark: 1h
      group_by: [user]
      aggregate: { orders: count() }
      output: update
sink:
  redis:
    url: $REDIS_URL
    command: HSET win:{user}:{window_start} orders {orders}
trigger: { available_now: true }
checkpoint: { dir: $WORK/win-ckpt }
YAML
expect_exit 0 "$SLUICE" run "$WORK/win.yaml" --progress none
# A restart with its checkpoint is an ordinary restart.
produce 100
expect_exit 0 "$SLUICE" run "$WORK/win.yaml" --progress none
expect_err "window state restored from batch"
grep -q "resumed from the sink" "$WORK/err.txt" && fail "win: an ordinary restart resumed from the sink"
rm -rf "$WORK/win-ckpt"
expect_exit 1 "$SLUICE" run "$WORK/win.yaml" --progress none
expect_err "job 'it-resume-win' keeps window state, which is in the checkpoint directory $WORK/win-ckpt, and the state for what the sink already holds was not found there \(the checkpoint has committed no batch; the sink holds batch [0-9]+, positions clicks\[0\] at [0-9]+, "
expect_err "starting with empty window state would emit wrong windows. To continue, restore the checkpoint directory; to start over, give the job a new id, or clear the sink's record \(the hash sluice:it-resume-win:commit at 127.0.0.1:$REDIS_PORT/0\)"
[ ! -e "$WORK/win-ckpt/commits/1" ] || fail "win: the refused run committed a batch"
# As the message says: with the sink's record cleared the job starts over.
rcli DEL sluice:it-resume-win:commit >/dev/null
expect_exit 0 "$SLUICE" run "$WORK/win.yaml" --progress none
echo "ok: a windowed job without its checkpoint is refused, naming the directory and how to start over"

# --- 5. continuous with dead letters, SIGKILLed before any epoch commit
for p in 0 1; do
  for i in $(seq 0 39); do
    if [ $((i % 4)) = 3 ]; then echo "not json $p.$i"; else echo "{\"id\":$((p * 100 + i)),\"user\":\"u$((i % 5))\"}"; fi
  done | kcat -b "$BROKERS" -P -t mixed -p $p 2>/dev/null || fail "kcat produce"
done
sed -e "s/topics: \[clicks\]/topics: [mixed]/" -e "s/it-resume-kill/it-resume-dl/" \
  -e "s/ kill:/ dl:/g" -e "s/continuous: 100ms/continuous: 1h/" \
  -e "s|checkpoint: { dir: .*|checkpoint: { dir: $WORK/dl-ckpt }\ndead_letter: { file: { path: $WORK/dl-dead } }|" \
  "$WORK/kill.yaml" >"$WORK/dl.yaml"
grep -q "dead_letter: { file: { path: $WORK/dl-dead } }" "$WORK/dl.yaml" || fail "dl.yaml: $(cat "$WORK/dl.yaml")"
"$SLUICE" run "$WORK/dl.yaml" --progress none 2>"$WORK/dl1.err" &
pid=$!
wait_for 60 has dl 60
kill -KILL $pid
wait $pid 2>/dev/null || true
[ "$(positions dl | grep -c '^mixed\[[01]\]=40$')" = 2 ] || fail "dl: the streams stored $(positions dl | tr '\n' ' ')"
sed -i 's/continuous: 1h/continuous: 100ms/' "$WORK/dl.yaml"
"$SLUICE" run "$WORK/dl.yaml" --progress none 2>"$WORK/dl2.err" &
pid=$!
wait_for 30 grep -qs "continuous: 2 streams over 2 partitions" "$WORK/dl2.err"
for p in 0 1; do # one more record each, so that epochs are cut either way
  echo "{\"id\":$((p * 100 + 40)),\"user\":\"u9\"}" | kcat -b "$BROKERS" -P -t mixed -p $p 2>/dev/null
done
wait_committed 60 "$WORK/dl-ckpt" 82
stop $pid "$WORK/dl2.err"
grep -q "resumed from the sink" "$WORK/dl2.err" && fail "dl: resumed past dead letters never committed"
[ "$(rcli GET dl:records)" = 62 ] && [ "$(rcli SCARD dl:ids)" = 62 ] ||
  fail "dl: $(rcli GET dl:records) records, $(rcli SCARD dl:ids) ids, expected 62"
python3 - "$WORK/dl-dead" <<'PY' || fail "dl: the dead letters are not each bad record once"
import collections, json, os, sys
d = sys.argv[1]
got = collections.Counter()
for b in os.listdir(os.path.join(d, "_manifest")):
    if not b.isdigit():
        continue
    body = open(os.path.join(d, "_manifest", b), "rb").read()
    m = json.loads(body[:body.rfind(b"#sluice-checksum ")])
    for f in m["files"]:
        for line in open(os.path.join(d, f["name"]), "rb").read().splitlines():
            r = json.loads(line)
            got[(r["partition"], r["offset"])] += 1
want = collections.Counter((p, i) for p in (0, 1) for i in range(40) if i % 4 == 3)
if got != want:
    sys.exit("dead letters %s, want each of %s once" % (sorted(got.items()), sorted(want)))
PY
echo "ok: continuous with dead letters: the restart took no position past uncommitted dead letters; each written once"
echo "ok: resume from the sink test"
