#!/usr/bin/env bash
# Bad input gets a clear error naming the place, with the right exit code,
# and nothing already committed is lost.
source "$(dirname "$0")/lib.bash" "$@"
cd "$WORK"

job() { # job NAME BROKERS TOPIC [extra yaml]
  cat >"$WORK/$1.yaml" <<YAML
job: $1
source:
  kafka:
    brokers: $2
    topics: [$3]
    connect_timeout: 2s
sink:
  file: { path: $WORK/$1-out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1-ckpt }
${4:-}
YAML
}

# --- usage errors: 64
expect_exit 64 "$SLUICE"
expect_exit 64 "$SLUICE" frobnicate
expect_err "unknown verb 'frobnicate'"
expect_exit 64 "$SLUICE" run
expect_err "expected one JOB.yaml"
expect_exit 64 "$SLUICE" run x.yaml --progress loud
expect_exit 64 "$SLUICE" produce --topic t --count 1
expect_err "required"
expect_exit 64 "$SLUICE" mock-kafka --topic :3
expect_exit 64 "$SLUICE" checkpoint list
for verb in run validate mock-kafka produce checkpoint; do
  expect_exit 0 "$SLUICE" "$verb" --help
  grep -q "usage: sluice $verb" "$WORK/out.txt" || fail "$verb --help"
done
expect_exit 0 "$SLUICE" --version
grep -Eq '^sluice [0-9]+\.[0-9]+\.[0-9]+$' "$WORK/out.txt" || fail "--version"

# --- invalid job files: 78 with file:line:col
printf 'job: x\nsource: { kafka: { brokers: b, topics: [t] }\nsink: {console: {}}\n' >bad1.yaml
expect_exit 78 "$SLUICE" validate bad1.yaml
expect_err '^bad1.yaml:[0-9]+:[0-9]+: '
job typo b:1 t "workrs: 2"
expect_exit 78 "$SLUICE" validate typo.yaml
expect_err "typo.yaml:11:1: unknown key 'workrs'.*did you mean 'workers'"
job dur b:1 t
sed -i 's/connect_timeout: 2s/connect_timeout: 2 fortnights/' dur.yaml
expect_exit 78 "$SLUICE" validate dur.yaml
expect_err 'dur.yaml:6:22: .*connect_timeout'
job size b:1 t
sed -i 's/connect_timeout: 2s/max_records_per_batch: -5/' size.yaml
expect_exit 78 "$SLUICE" validate size.yaml
expect_err 'size.yaml:6:28: .*max_records_per_batch'
job envv '${SL_NOT_SET_ANYWHERE}' t
expect_exit 78 "$SLUICE" validate envv.yaml
expect_err 'envv.yaml:4:14: .*SL_NOT_SET_ANYWHERE'
expect_exit 78 "$SLUICE" run envv.yaml
expect_exit 78 "$SLUICE" validate does-not-exist.yaml
expect_err "does-not-exist.yaml: cannot open"
job good b:1 t
expect_exit 0 "$SLUICE" validate good.yaml
expect_exit 78 "$SLUICE" validate good.yaml --set source.kafka.topics.x=1

# --- an unreachable broker: a clear error after a bounded wait
job unreach 127.0.0.1:1 t
expect_exit 1 timeout 60 "$SLUICE" run unreach.yaml
expect_err "cannot reach Kafka at 127.0.0.1:1 within 2000 ms"

# --- a missing topic
start_mock --topic clicks:2
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 1000 2>/dev/null
job missing "$BROKERS" nosuch
expect_exit 1 timeout 60 "$SLUICE" run missing.yaml
expect_err "topic 'nosuch' does not exist"

# --- an unwritable checkpoint directory
touch "$WORK/afile"
job unwritable "$BROKERS" clicks
sed -i "s|dir: $WORK/unwritable-ckpt|dir: $WORK/afile/ckpt|" unwritable.yaml
expect_exit 1 "$SLUICE" run unwritable.yaml
expect_err "checkpoint directory $WORK/afile/ckpt"

# --- a corrupt checkpoint file is reported, never used; the output that
# was committed stays
job corrupt "$BROKERS" clicks
expect_exit 0 "$SLUICE" run corrupt.yaml
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/corrupt-out" 1000
f=$(ls "$WORK"/corrupt-ckpt/commits/* | sort -V | tail -1)
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[3] ^= 0x20
open(p, "wb").write(b)
PY
expect_exit 1 "$SLUICE" run corrupt.yaml
expect_err "checksum mismatch"
expect_err "$f"
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/corrupt-out" 1000

# --- validate reports every error of the file, in file order, each with
# its place, not only the first
cat >"$WORK/many.yaml" <<'YAML'
job: many
source:
  kafka:
    brokers: embedded
    topic_list: [clicks]
    max_records_per_batch: lots
pipeline:
  - parse: json
  - filter: 'amount >'
sink:
  console: {}
YAML
expect_exit 78 "$SLUICE" validate "$WORK/many.yaml"
printf '%s\n' \
  "$WORK/many.yaml:5:5: unknown key 'topic_list' in source.kafka \(known keys: .*\)" \
  "$WORK/many.yaml:6:28: source.kafka.max_records_per_batch: 'lots' is not an integer" \
  "$WORK/many.yaml:9:13: filter: column 9: expected an expression after '>'" \
  >"$WORK/many.want"
[ "$(wc -l <"$WORK/err.txt")" = 4 ] || { cat "$WORK/err.txt" >&2; fail "validate: want 3 errors and the missing topics"; }
# the missing required key (not a near miss of topic_list) is the fourth
grep -q "^$WORK/many.yaml:4:5: missing required key 'topics' in source.kafka$" "$WORK/err.txt" ||
  { cat "$WORK/err.txt" >&2; fail "validate: the missing key"; }
grep -v "missing required" "$WORK/err.txt" | paste - "$WORK/many.want" |
  while IFS=$'\t' read -r got want; do
    [[ $got =~ ^$want$ ]] || fail "validate: got '$got', want '$want'"
  done
# a near miss of a required key is one error, not two
sed -i 's/topic_list/topcs/' "$WORK/many.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/many.yaml"
[ "$(wc -l <"$WORK/err.txt")" = 3 ] || { cat "$WORK/err.txt" >&2; fail "validate: a misspelled key counts once"; }
expect_err "5:5: unknown key 'topcs' in source.kafka; did you mean 'topics'\?"
# at most 50, then the count of the rest
{
  echo "job: many"
  echo "source: { kafka: { brokers: embedded, topics: [t] } }"
  echo "sink: { console: {} }"
  echo "pipeline:"
  echo "  - parse: json"
  for i in $(seq 1 60); do echo "  - filter: 'x $i'"; done
} >"$WORK/sixty.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/sixty.yaml"
[ "$(wc -l <"$WORK/err.txt")" = 51 ] || { head -3 "$WORK/err.txt" >&2; fail "validate: want 50 errors and a count"; }
head -1 "$WORK/err.txt" | grep -q "sixty.yaml:6:" || fail "validate: the first error first"
sed -n 50p "$WORK/err.txt" | grep -q "sixty.yaml:55:" || fail "validate: in file order"
[ "$(tail -1 "$WORK/err.txt")" = "... and 10 more errors" ] || fail "validate: $(tail -1 "$WORK/err.txt")"
# run reports the same way
expect_exit 78 "$SLUICE" run "$WORK/sixty.yaml"
[ "$(wc -l <"$WORK/err.txt")" = 51 ] || fail "run: want 50 errors and a count"

echo "ok: errors"
