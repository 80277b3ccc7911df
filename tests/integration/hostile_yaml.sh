#!/usr/bin/env bash
# Hostile job files get a clear error naming the file (and the place, when
# there is one) and exit 78, in bounded time and memory: alias expansion
# ("billion laughs"), nesting 20,000 levels deep, binary garbage, an empty
# file, a 10 MB file, and a device that never ends. Each validate runs
# under a 1 GiB address-space limit and a timeout that only guards against
# a hang (it is far above what any of them takes).
source "$(dirname "$0")/lib.bash" "$@"
cd "$WORK"
PY=/usr/bin/python3

# bounded FILE: validate FILE with bounded memory; leaves out.txt/err.txt
bounded() {
  expect_exit 78 bash -c 'ulimit -v 1048576; exec timeout -s KILL 120 "$0" validate "$1"' "$SLUICE" "$1"
}

# billion laughs: nine levels of ten aliases each
"$PY" - >laughs.yaml <<'PY'
print("job: laughs")
print('a0: &a0 "lol"')
for i in range(1, 10):
    print(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]")
print("source: { kafka: { brokers: embedded, topics: [t] } }")
print("sink: { console: {} }")
PY
bounded laughs.yaml
expect_err "laughs.yaml:2:5: anchors \(&a0\) are not supported"

# 20,000 levels in flow style, 1,000 in block style
"$PY" -c 'print("job: deep\nx: " + "[" * 20000 + "]" * 20000)' >deep-flow.yaml
bounded deep-flow.yaml
expect_err "deep-flow.yaml:2:[0-9]+: nesting deeper than 256 levels"
"$PY" -c '
print("job: deep")
for i in range(1000):  # 500 KB: block style indents every level
    print(" " * i + "k:")' >deep-block.yaml
bounded deep-block.yaml
expect_err "deep-block.yaml:[0-9]+:[0-9]+: nesting deeper than 256 levels"

# binary garbage (fixed seed: the same bytes every run)
"$PY" -c '
import random, sys
r = random.Random(17)
sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(65536)))' >garbage.yaml
bounded garbage.yaml
expect_err "garbage.yaml:[0-9]+:[0-9]+: "

# empty, and only comments
: >empty.yaml
bounded empty.yaml
expect_err "empty.yaml: file is empty"
printf '# nothing here\n\n' >comments.yaml
bounded comments.yaml
expect_err "comments.yaml: file is empty"

# 10 MB: refused before parsing
"$PY" -c '
import sys
sys.stdout.write("job: big\n")
line = "# " + "x" * 97 + "\n"
sys.stdout.write(line * 100000)' >big.yaml
[ "$(stat -c %s big.yaml)" -ge 10000000 ] || fail "big.yaml is not 10 MB"
bounded big.yaml
expect_err "big.yaml: the file is larger than 4 MiB"
# a device that never ends
bounded /dev/zero
expect_err "/dev/zero: the file is larger than 4 MiB"

# just under the limit, a valid job is still read
{
  echo "job: nearly"
  echo "source: { kafka: { brokers: embedded, topics: [t] } }"
  echo "sink: { console: {} }"
  "$PY" -c 'import sys; sys.stdout.write(("# " + "x" * 97 + "\n") * 40000)'
} >nearly.yaml
expect_exit 0 "$SLUICE" validate nearly.yaml
grep -q "valid: job 'nearly'" out.txt || fail "a 4 MB job file under the limit"
echo "ok: hostile YAML"
