#!/usr/bin/env bash
# What `sluice run` writes to a person and to a machine:
#  1. on a terminal (a pseudo-terminal made by script(1)), available-now
#     shows one status line redrawn in place with a progress bar and an
#     ETA, ending at 100%;
#  2. the interval trigger on a terminal shows batch, rate and lag;
#  3. without a terminal: one plain line per batch, no control characters;
#  4. --log-format json: every line on stderr is a JSON object.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 --seed 61 \
  2>/dev/null || fail "produce"
job() { # job NAME TRIGGER
  cat >"$WORK/$1.yaml" <<YAML
job: $1
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 2000
sink:
  file: { path: $WORK/$1-out }
trigger: $2
checkpoint: { dir: $WORK/$1-ckpt }
YAML
}

# 1. available-now on a terminal.
job tty '{ available_now: true }'
script -qec "'$SLUICE' run '$WORK/tty.yaml'" /dev/null >"$WORK/tty.out" 2>&1 ||
  fail "run on a terminal: $(cat -v "$WORK/tty.out")"
python3 - "$WORK/tty.out" <<'PY'
import re, sys
out = open(sys.argv[1], "rb").read().decode()
bars = re.findall(r"\rsluice: \[([#.]{24})\] +(\d+)% (\S+)/(\S+) records", out)
assert len(bars) == 10, f"{len(bars)} status lines: {out!r}"
pcts = [int(b[1]) for b in bars]
assert pcts == sorted(pcts) and pcts[-1] == 100 and pcts[0] == 10, pcts
assert bars[-1][0] == "#" * 24, bars[-1]
assert "ETA" in out and "\x1b[K" in out
assert "sluice: batch 1:" not in out, "plain progress lines on a terminal"
# the last status line was ended before the next line
assert re.search(r"100% [^\r\n]*\x1b\[K\r?\n", out), repr(out[-300:])
print("ok: progress bar,", len(bars), "redraws")
PY

# 2. The interval trigger on a terminal: stopped with SIGTERM once three
#    batches are committed.
job live '{ interval: 50ms }'
cat >"$WORK/live.sh" <<SH
'$SLUICE' run '$WORK/live.yaml' &
pid=\$!
for _ in \$(seq 1 1000); do
  [ -e '$WORK/live-ckpt/commits/3' ] && break
  sleep 0.01
done
kill -TERM \$pid
wait \$pid
SH
script -qec "bash '$WORK/live.sh'" /dev/null >"$WORK/live.out" 2>&1 ||
  fail "interval run on a terminal: $(cat -v "$WORK/live.out")"
grep -Eq $'\rsluice: batch [0-9]+, [0-9.]+[kMG]? records/s, lag [0-9.]+[kMG]?, last batch [0-9]+ ms' "$WORK/live.out" ||
  fail "no live status line: $(cat -v "$WORK/live.out")"

# 3. Not a terminal: plain lines.
job plain '{ available_now: true }'
expect_exit 0 "$SLUICE" run "$WORK/plain.yaml"
[ "$(grep -c '^sluice: batch [0-9]*: 2000 records in ' "$WORK/err.txt")" = 10 ] ||
  fail "expected 10 plain progress lines: $(cat "$WORK/err.txt")"
if grep -q $'[\r\033]' "$WORK/err.txt"; then fail "control characters without a terminal"; fi

# 4. JSON logs.
job json '{ available_now: true }'
expect_exit 0 "$SLUICE" run "$WORK/json.yaml" --log-format json
python3 - "$WORK/err.txt" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
logs = [l for l in lines if "level" in l]
progress = [l for l in lines if "batchId" in l]
assert len(logs) + len(progress) == len(lines)
assert len(progress) == 10 and sum(p["numInputRows"] for p in progress) == 20000
assert all(set(l) == {"ts", "level", "msg"} and l["ts"].endswith("Z") for l in logs), logs[:2]
assert any("available-now" in l["msg"] for l in logs)
print("ok: json logs:", len(logs), "log lines,", len(progress), "progress objects")
PY
expect_exit 64 "$SLUICE" run "$WORK/json.yaml" --log-format xml
expect_err "log-format must be text or json, not 'xml'"
echo "ok: terminal test"
