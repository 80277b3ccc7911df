#!/usr/bin/env bash
# With umask 022, what sluice keeps for itself is private: every file in
# the checkpoint (offsets, commits, metadata, window state snapshots) and in
# the file sink's _manifest is 0600, every directory 0700; the part files
# and the output directory, which are the users', keep what the umask
# gives (0644, 0755). An umask of 077, or 000 on a later run, changes
# nothing of the first.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 --seed 7 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
job() { # job NAME: a windowed job into the file sink, dead letters too
  cat >"$WORK/$1.yaml" <<YAML
job: it-file-modes-$1
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 5000
pipeline:
  - parse: json
  - window:
      tumbling: 10s
      time: ts
      watermark: 0s
      group_by: [user]
      aggregate: { n: count() }
      output: update
dead_letter:
  file: { path: $WORK/$1/dead }
sink:
  file: { path: $WORK/$1/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/$1/ckpt/job }
workers: 2
YAML
}
# check DIR FILE_MODE DIR_MODE: every file and directory under DIR (DIR
# included) has the mode; there is at least one file.
check() {
  local bad
  bad=$(find "$1" -type f ! -perm "$2" -printf '%m %p\n')
  [ -z "$bad" ] || fail "files not $2 under $1: $bad"
  bad=$(find "$1" -type d ! -perm "$3" -printf '%m %p\n')
  [ -z "$bad" ] || fail "directories not $3 under $1: $bad"
  [ -n "$(find "$1" -type f)" ] || fail "no files under $1"
}
for mask in 022 077; do
  name=m$mask
  job $name
  (umask $mask && exec "$SLUICE" run "$WORK/$name.yaml" --progress none) \
    >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    fail "umask $mask: run failed: $(tail -5 "$WORK/$name.err")"
  ck=$WORK/$name/ckpt/job
  # The run made what the test looks at: state snapshots and manifests.
  [ -n "$(find "$ck/state" -type f -name index)" ] || fail "umask $mask: no state snapshot in $ck"
  [ -n "$(find "$ck/offsets" -type f)" ] || fail "umask $mask: no offsets in $ck"
  [ -n "$(find "$WORK/$name/out/_manifest" -type f)" ] || fail "umask $mask: no manifest"
  check "$ck" 600 700
  check "$WORK/$name/out/_manifest" 600 700
  check "$WORK/$name/dead/_manifest" 600 700
  # The checkpoint's parent directory was created for it: private too.
  [ "$(stat -c %a "$WORK/$name/ckpt")" = 700 ] || fail "umask $mask: $WORK/$name/ckpt is $(stat -c %a "$WORK/$name/ckpt")"
  if [ $mask = 022 ]; then
    # The users' output: as the umask gives.
    [ "$(stat -c %a "$WORK/$name/out")" = 755 ] || fail "output directory is $(stat -c %a "$WORK/$name/out"), not 755"
    parts=$(find "$WORK/$name/out" -maxdepth 1 -type f)
    [ -n "$parts" ] || fail "no part files in $WORK/$name/out"
    bad=$(find "$WORK/$name/out" -maxdepth 1 -type f ! -perm 644 -printf '%m %p\n')
    [ -z "$bad" ] || fail "part files not 644: $bad"
  fi
  echo "ok: umask $mask"
done
# A checkpoint written again (a second run on the same directory) stays
# private: files replaced by the atomic writes are created anew.
(umask 000 && exec "$SLUICE" run "$WORK/m022.yaml" --progress none) \
  >"$WORK/again.out" 2>"$WORK/again.err" || fail "second run: $(tail -5 "$WORK/again.err")"
check "$WORK/m022/ckpt/job" 600 700
echo "ok: file modes"
