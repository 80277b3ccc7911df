#!/usr/bin/env bash
# Soak: the windowed job in append mode, killed with SIGKILL at 8 random
# moments and restarted: the output equals that of one uninterrupted run,
# exactly. (Random, so not in `make test`; the crash matrix aims at every
# crash point instead.)
source "$(dirname "$0")/../integration/lib.bash" "$@"
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

# One uninterrupted run, then a run killed 8 times.
job once append 5s
expect_exit 0 "$SLUICE" run "$WORK/once.yaml"
job crash append 5s
seed=${SLUICE_CRASH_SEED:-$RANDOM}
echo "crash seed: $seed"
RANDOM=$seed
killed=0
for k in $(for _ in $(seq 1 8); do echo $((RANDOM % 14)); done | sort -n); do
  "$SLUICE" run "$WORK/crash.yaml" --progress none 2>>"$WORK/crash.err" &
  pid=$!
  if [ "$k" -gt 0 ]; then
    for _ in $(seq 1 3000); do
      [ -e "$WORK/crash-out/_manifest/$k" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
  fi
  sleep "0.0$(printf '%02d' $((RANDOM % 16)))"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null || true
done
echo "killed $killed of 8 runs while running"
expect_exit 0 "$SLUICE" run "$WORK/crash.yaml"
python3 "$SRC/tests/integration/window_rows.py" "$WORK/once-out" >"$WORK/once.json"
python3 "$SRC/tests/integration/window_rows.py" "$WORK/crash-out" >"$WORK/crash.json"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/once.json")" -gt 50 ] || fail "too few windows emitted"
cmp -s "$WORK/once.json" "$WORK/crash.json" || fail "append output after crashes differs from the uninterrupted run"
# Dead letters (late records) are exact too.
python3 - "$SRC/tests/integration" "$WORK/once-dead" "$WORK/crash-dead" <<'PY'
import json, os, sys
sys.path.insert(0, sys.argv[1])
from check_file_sink import unseal
def offsets(d):
    m = os.path.join(d, "_manifest")
    out = []
    for n in sorted(int(x) for x in os.listdir(m) if x.isdigit()):
        for f in unseal(os.path.join(m, str(n)))["files"]:
            out += [(json.loads(l)["partition"], json.loads(l)["offset"])
                    for l in open(os.path.join(d, f["name"]))]
    return sorted(out)
a, b = offsets(sys.argv[2]), offsets(sys.argv[3])
assert a == b, (len(a), len(b))
print("ok: dead letters equal:", len(a))
PY
echo "ok: windows exact after random kills"
