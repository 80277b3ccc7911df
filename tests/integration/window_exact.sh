#!/usr/bin/env bash
# The windowed job end to end on the embedded cluster:
#  1. update mode: the final value of every window equals an independent
#     reference (window_reference.py over the records read back with kcat);
#  2. state over state.max_bytes stops the job with a clear message.
# (The windowed job crashed at every crash point: tests/integration/crash;
# killed at random moments: tests/soak/window_kills.sh.)
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 60000 --seed 11 \
  2>/dev/null || fail "produce"
job() { # job NAME MODE LATENESS
  cat >"$WORK/$1.yaml" <<YAML
job: $1
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 4000
    task_max_records: 1500
pipeline:
  - parse: json
  - filter: 'event == "buy" && amount > 0'
  - window:
      tumbling: 10s
      time: ts
      watermark: $3
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count() }
      output: $2
sink:
  file: { path: $WORK/$1-out }
dead_letter:
  file: { path: $WORK/$1-dead }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1-ckpt }
workers: 2
YAML
}

# 1. Differential, update mode; lateness above the whole event-time span
# so that no record is late.
job upd update 1h
expect_exit 0 "$SLUICE" run "$WORK/upd.yaml" --log-level debug
# The file sinks let a batch's reads run beside the previous commit; the
# comparison below then covers that path too.
beside=$(grep -c "read beside batch" "$WORK/err.txt" || true)
[ "$beside" -gt 0 ] || fail "no batch was read beside the previous commit"
echo "ok: $beside batches were read beside the previous batch's commit"
kcat -b "$BROKERS" -C -t clicks -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null
[ "$(wc -l <"$WORK/records.jsonl")" = 60000 ] || fail "kcat read $(wc -l <"$WORK/records.jsonl") records"
python3 "$SRC/tests/integration/window_reference.py" "$WORK/records.jsonl" 10000 >"$WORK/want.json"
python3 "$SRC/tests/integration/window_rows.py" "$WORK/upd-out" last >"$WORK/got.json"
cmp -s "$WORK/want.json" "$WORK/got.json" || {
  python3 - "$WORK/want.json" "$WORK/got.json" <<'PY'
import json, sys
w, g = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(len(w), "expected rows,", len(g), "got")
ws = {json.dumps(r, sort_keys=True) for r in w}; gs = {json.dumps(r, sort_keys=True) for r in g}
for r in sorted(ws - gs)[:5]: print("- ", r)
for r in sorted(gs - ws)[:5]: print("+ ", r)
PY
  fail "update-mode windows differ from the reference"
}
echo "ok: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/want.json") windows equal the reference"

# State over state.max_bytes stops the job with a clear message, and
# nothing committed before is lost.
job big update 1h
expect_exit 1 "$SLUICE" run "$WORK/big.yaml" --set state.max_bytes=20KB
expect_err "window state holds [0-9]+ bytes in [0-9]+ windows, more than state.max_bytes \(20000\)"
[ ! -e "$WORK/big-out/_manifest/2" ] || fail "batches committed past the state limit"
echo "ok: windows exact"
