#!/usr/bin/env bash
# Poison records, as a new user meets them: each bad record goes to the
# dead letters with a clear reason and its coordinates, the good ones
# around it are processed, and the job finishes. Also the limits: a record
# over max_record_bytes (default 1 MiB) is refused before parsing and
# passes once the limit is raised; JSON nested 5,000 levels deep is
# processed and nesting past SL_JSON_MAX_DEPTH is refused.
source "$(dirname "$0")/lib.bash" "$@"
cd "$WORK"
PY=/usr/bin/python3 # Debian's, which has python3-confluent-kafka
start_mock --topic poison:1

# One partition, so offset i is record i.
"$PY" - "$BROKERS" <<'PY' || fail "cannot produce the poison records"
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "message.max.bytes": 8 << 20})
big = b'{"n":6,"x":6,"blob":"' + b"y" * (3 << 20) + b'"}'
deep_ok = b'{"n":7,"x":7,"deep":' + b"[" * 4999 + b"1" + b"]" * 4999 + b"}"
too_deep = b'{"n":8,"x":8,"deep":' + b"[" * 10000 + b"1" + b"]" * 10000 + b"}"
values = [
    b'{"n":0,"x":0}',
    b'{"n":1,"x":1,"s":"caf\xc3"}',  # invalid UTF-8 in a string
    b'{"n":2,"x":NaN}',  # NaN is not JSON
    b'{"n":3,"x":"ten"}',  # a field of the wrong type
    b"hello, world",  # not JSON
    None,  # a tombstone
    big,  # 3 MiB
    deep_ok,  # 5,000 levels (the row is the first)
    too_deep,  # 10,001 levels
    b"\x00\xff\xfe\x80binary",  # bytes that are not text
    b'{"n":10,"x":10}',
]
for i, v in enumerate(values):
    p.produce("poison", value=v, key=b"k%d" % i, partition=0)
p.flush(30)
PY

job() { # job NAME [extra source yaml]
  cat >"$WORK/$1.yaml" <<YAML
job: $1
source:
  kafka:
    brokers: $BROKERS
    topics: [poison]
    starting_offsets: earliest
    ${2:-}
pipeline:
  - parse: json
  - map: { twice: 'x * 2' }
  - select: [n, twice]
sink:
  file: { path: $WORK/$1-out }
dead_letter:
  file: { path: $WORK/$1-dead }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1-ckpt }
YAML
}

# check NAME "OUT_NS" "DEAD OFFSET=REGEX ...": the outputs' n, in order,
# and each dead letter's reason by offset; every dead letter is valid JSON.
check() {
  "$PY" - "$WORK/$1-out" "$WORK/$1-dead" "$2" "$3" <<'PY' || fail "$1: wrong output or dead letters"
import json, os, re, sys
out, dead, want_out, want_dead = sys.argv[1:5]

def lines(d):
    rows = []
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        if os.path.isfile(p) and not f.startswith((".", "_")):
            rows += [json.loads(l) for l in open(p, "rb").read().splitlines()]
    return rows

got = sorted(r["n"] for r in lines(out))
if got != [int(n) for n in want_out.split()]:
    sys.exit(f"outputs n={got}, want {want_out}")
for r in lines(out):
    if r["twice"] != 2 * r["n"]:
        sys.exit(f"bad output {r}")
dl = {d["offset"]: d for d in lines(dead)}
want = dict(w.split("=", 1) for w in want_dead.split(";") if w)
if sorted(dl) != sorted(int(k) for k in want):
    sys.exit(f"dead letters at {sorted(dl)}, want {sorted(int(k) for k in want)}: "
             + "; ".join(f"{o}: {d['reason']}" for o, d in sorted(dl.items())))
for k, rx in want.items():
    d = dl[int(k)]
    if not re.search(rx, d["reason"]):
        sys.exit(f"dead letter {k}: reason {d['reason']!r} does not match {rx!r}")
    if d["topic"] != "poison" or d["partition"] != 0 or d.get("key") != f"k{k}":
        sys.exit(f"dead letter {k}: coordinates {d}")
# the raw bytes, so that nothing is lost: text as text, others as hex
if dl[4]["value"] != "hello, world" or dl[5]["value"] is not None:
    sys.exit(f"raw values: {dl[4]}, {dl[5]}")
if dl[1].get("value_hex") != b'{"n":1,"x":1,"s":"caf\xc3"}'.hex():
    sys.exit(f"invalid UTF-8 kept as hex: {dl[1]}")
if dl[9].get("value_hex") != b"\x00\xff\xfe\x80binary".hex():
    sys.exit(f"binary kept as hex: {dl[9]}")
print(f"ok: {len(got)} outputs, {len(dl)} dead letters")
PY
}

reasons="1=parse: invalid JSON at byte [0-9]+: .*UTF-8"
reasons+=";2=parse: invalid JSON at byte 11"
reasons+=";3=map.twice: .*needs numbers"
reasons+=";4=parse: invalid JSON at byte 0"
reasons+=";5=parse: the record has no value"
reasons+=";8=parse: JSON nested deeper than 10000 levels"
reasons+=";9=parse: invalid JSON"

# The default limit: the 3 MiB record is refused with its size, unparsed.
job a
expect_exit 0 "$SLUICE" run "$WORK/a.yaml"
check a "0 7 10" "$reasons;6=^record too large: 31457[0-9]+ bytes > max_record_bytes 1048576$"
"$PY" -c 'import json,sys,os
d=[json.loads(l) for f in os.listdir(sys.argv[1]) if not f.startswith(("_", ".")) and os.path.isfile(os.path.join(sys.argv[1], f)) for l in open(os.path.join(sys.argv[1], f))]
big=[x for x in d if x["offset"] == 6][0]
assert big["value"] is None, "an oversized record is not copied into its dead letter"' "$WORK/a-dead" ||
  fail "the oversized record's dead letter"

# Raised: the same record is processed.
job b "max_record_bytes: 4MiB"
expect_exit 0 "$SLUICE" run "$WORK/b.yaml"
check b "0 6 7 10" "$reasons"

# A bad limit is a config error naming the place.
job c "max_record_bytes: lots"
expect_exit 78 "$SLUICE" validate "$WORK/c.yaml"
expect_err "c.yaml:7:23: source.kafka.max_record_bytes: .lots. is not a size"
echo "ok: poison records"
