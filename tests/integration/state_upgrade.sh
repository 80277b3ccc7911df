#!/usr/bin/env bash
# A windowed job's checkpoint written in the old layout of the window
# state (one sealed file per shard, state/N/<shard>, as versions before
# the pack wrote it) keeps working: the job goes on from it, and its
# output equals that of the same job whose checkpoint was never touched.
#
# The input arrives in three parts; each run reads to its end. Between
# the first and the second run, the state of the tested job's checkpoint
# is turned into the old layout (every state/N/shards split into
# state/N/<shard> files, then removed). The group key moves with the
# record id, so a batch changes only a few shards: after the second run
# the newest index names old-layout batches for some shards and packs for
# others, and the third run restores from that mixed index.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4
job() { # job NAME
  cat >"$WORK/$1.yaml" <<YAML
job: $1
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 2000
pipeline:
  - parse: json
  - map: { user: 'to_string(to_int(id / 1500))' }
  - window:
      tumbling: 10s
      time: ts
      watermark: 1h
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count() }
      output: update
sink:
  file: { path: $WORK/$1-out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1-ckpt, retain: 3 }
workers: 2
YAML
}
job ref
job old
produce() { # produce FIRST COUNT
  "$SLUICE" produce --brokers "$BROKERS" --topic clicks --first "$1" \
    --count "$2" --seed 5 2>/dev/null || fail "produce"
}
run_both() {
  expect_exit 0 "$SLUICE" run "$WORK/ref.yaml" --progress none
  expect_exit 0 "$SLUICE" run "$WORK/old.yaml" --progress none
  cp "$WORK/err.txt" "$WORK/old.err"
}

produce 0 9000
run_both
ls "$WORK"/old-ckpt/state/*/shards >/dev/null 2>&1 || fail "the job wrote no pack"

# The old layout: each pack's images as files of their own, sealed.
python3 - "$WORK/old-ckpt/state" <<'PY' || fail "could not write the old layout"
import os, struct, sys, zlib
MARK = b"#sluice-checksum crc32="
def seal(body):
    return body + MARK + b"%08x len=%d\n" % (zlib.crc32(body), len(body))
root = sys.argv[1]
for n in sorted(os.listdir(root)):
    pack = os.path.join(root, n, "shards")
    if not os.path.exists(pack):
        continue
    data = open(pack, "rb").read()
    body = data[: data.rindex(MARK)]
    assert seal(body) == data, pack
    magic, version, batch, count, _ = struct.unpack_from("<4sIQII", body)
    assert (magic, version, batch) == (b"SLSP", 1, int(n)), pack
    for i in range(count):
        shard, _, off, length = struct.unpack_from("<IIQQ", body, 24 + 24 * i)
        with open(os.path.join(root, n, str(shard)), "wb") as f:
            f.write(seal(body[off:off + length]))
    os.remove(pack)
PY
[ -z "$(ls "$WORK"/old-ckpt/state/*/shards 2>/dev/null)" ] || fail "a pack is left"
batches1=$(ls "$WORK/old-ckpt/commits" | grep "^[0-9]*$" | sort -n | tail -1)

produce 9000 6000
run_both
expect_err "window state restored from batch $batches1:"
# The newest index names both layouts.
python3 - "$WORK/old-ckpt" <<'PY' || fail "the newest index does not name both layouts"
import json, os, sys
ck = sys.argv[1]
last = max(int(n) for n in os.listdir(os.path.join(ck, "commits")) if n.isdigit())
raw = open(os.path.join(ck, "state", str(last), "index"), "rb").read()
index = json.loads(raw[: raw.rindex(b"#sluice-checksum")])
refs = {b for b in index["shards"] if b}
packed = {b for b in refs if os.path.exists(os.path.join(ck, "state", str(b), "shards"))}
print(f"index {last}: shards in batches {sorted(refs)}, packs {sorted(packed)}")
sys.exit(0 if packed and refs - packed else 1)
PY

produce 15000 3000
run_both
expect_err "window state restored from batch"

python3 "$SRC/tests/integration/window_rows.py" "$WORK/ref-out" last >"$WORK/want.json"
python3 "$SRC/tests/integration/window_rows.py" "$WORK/old-out" last >"$WORK/got.json"
cmp -s "$WORK/want.json" "$WORK/got.json" || {
  diff <(python3 -m json.tool "$WORK/want.json") <(python3 -m json.tool "$WORK/got.json") | head -20
  fail "the output of the job upgraded from the old layout differs"
}
diff <(ls "$WORK/ref-out/_manifest") <(ls "$WORK/old-out/_manifest") >/dev/null ||
  fail "the two jobs committed different batches"
echo "ok: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/want.json") windows equal after the upgrade from the old layout"
