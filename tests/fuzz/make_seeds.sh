#!/usr/bin/env bash
# make_seeds.sh SLUICE SEED_BODY [CORPUS]: writes the seeds of fuzz_job,
# fuzz_checkpoint and fuzz_snapshot from real runs: the example job files,
# and the checkpoint, manifest and window state files of example jobs run
# on the embedded cluster (their envelopes are checksummed, so the seeds
# must be files the code wrote; the old layout's shard files, which it
# writes no more, are made from its packs' images as the versions before
# the pack made them). SLUICE is the sluice binary, SEED_BODY
# the seed_body tool of the fuzz build, CORPUS tests/fuzz/corpus by
# default. Each seed starts with the target's two selector bytes (see the
# targets' comments). The other corpora are written by hand.
set -euo pipefail
sluice=$(realpath "$1") body_tool=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
corpus=$(realpath -m "${3:-$here/corpus}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-seeds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# seed B0 B1 OUT < content: the two selector bytes, then the content.
seed() { { printf "\\x$(printf %02x "$1")\\x$(printf %02x "$2")"; cat; } > "$3"; }
# body FILE: FILE without its envelope trailer.
body() { python3 -c 'import sys
d = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(d[:d.rfind(b"#sluice-checksum")])' "$1"; }
run() { # run DIR JOB [--set ...]: the job in DIR, checkpoint in DIR/ck
  local dir=$1 job=$2; shift 2
  mkdir -p "$dir"
  (cd "$dir" && "$sluice" run "$job" --set checkpoint.dir="$dir/ck" "$@" \
     > run.log 2>&1)
}

mkdir -p "$corpus"/{job,checkpoint,snapshot}
cp "$src"/examples/*.yaml "$corpus/job/"

run "$tmp/qs" "$src/examples/quickstart.yaml"
run "$tmp/rev" "$src/examples/revenue_per_user.yaml" \
  --set source.kafka.embedded.records=2000
run "$tmp/top" "$src/examples/top_pages.yaml" \
  --set source.kafka.embedded.records=3000
cat > "$tmp/all.yaml" <<'YAML'
job: all-aggregates
source:
  kafka:
    brokers: embedded
    topics: [clicks]
    embedded: { partitions: 2, records: 300 }
pipeline:
  - parse: json
  - window:
      hopping: { size: 10s, slide: 5s }
      time: ts
      watermark: 1s
      group_by: [page, event]
      aggregate: { n: count(), s: sum(amount), lo: min(user),
                   hi: max(amount), a: avg(amount), d: count_distinct(user) }
      output: update
sink:
  file: { path: ./out/all }
trigger: { available_now: true }
YAML
run "$tmp/all" "$tmp/all.yaml"

# fuzz_checkpoint: byte 0 = file (0 metadata, 1 offsets, 2 commits,
# 3 manifest) + 4 when the rest is a body to seal; byte 1 = N.
c=$corpus/checkpoint qs=$tmp/qs/ck
seed 0 1 "$c/metadata" < "$qs/metadata"
body "$qs/metadata" | seed 4 1 "$c/metadata.body"
seed 1 5 "$c/offsets5" < "$qs/offsets/5"
body "$qs/offsets/5" | seed 5 5 "$c/offsets5.body"
seed 1 1 "$c/offsets1" < "$qs/offsets/1"
seed 2 5 "$c/commits5" < "$qs/commits/5"
body "$qs/commits/5" | seed 6 5 "$c/commits5.body"
seed 2 1 "$c/commits1.windowed" < "$tmp/rev/ck/commits/1"
m=$tmp/rev/out/revenue-per-user/_manifest/1
seed 3 1 "$c/manifest1" < "$m"
body "$m" | seed 7 1 "$c/manifest1.body"
seed 3 1 "$c/manifest1.dead" < "$tmp/rev/out/revenue-per-user-dead/_manifest/1"

# Small runs of the same jobs, for packs of a few shards.
run "$tmp/rev-small" "$src/examples/revenue_per_user.yaml" \
  --set source.kafka.embedded.records=60
run "$tmp/top-small" "$src/examples/top_pages.yaml" \
  --set source.kafka.embedded.records=8
run "$tmp/all-small" "$tmp/all.yaml" --set source.kafka.embedded.records=3

# fuzz_snapshot: byte 0 = 16 * window definition + mode (0 shard file of
# the old layout, 1 image, 2 raw body, 3 index file, 4 index body, 5 image
# to checkpoint/snapshot.c alone, 6 pack file, 7 pack body); byte 1 =
# shard or N. The old layout's files are what the versions before the
# pack wrote for a shard: its image, sealed.
seal() { python3 -c 'import sys, zlib
d = sys.stdin.buffer.read()
sys.stdout.buffer.write(d + b"#sluice-checksum crc32=%08x len=%d\n" % (zlib.crc32(d), len(d)))'; }
s=$corpus/snapshot
for spec in 0:rev 1:top 2:all; do
  n=${spec%%:*} st=$tmp/${spec#*:}/ck/state/1
  for k in $("$body_tool" list "$st/shards" | awk '{print $1}' | sort -n |
             head -40 | awk 'NR % 10 == 3'); do
    "$body_tool" image "$st/shards" "$k" | seal > "$tmp/old"
    [ "$(stat -c %s "$tmp/old")" -gt 1500 ] && continue
    seed $((n * 16)) "$k" "$s/s$n-shard$k" < "$tmp/old"
    body "$tmp/old" | seed $((n * 16 + 1)) "$k" "$s/s$n-shard$k.img"
    body "$tmp/old" | seed $((n * 16 + 5)) "$k" "$s/s$n-shard$k.snap"
    "$body_tool" raw "$st/shards" "$k" | seed $((n * 16 + 2)) "$k" "$s/s$n-shard$k.raw"
  done
  seed $((n * 16 + 3)) 1 "$s/s$n-index" < "$st/index"
  body "$st/index" | seed $((n * 16 + 4)) 1 "$s/s$n-index.body"
  sm=$tmp/${spec#*:}-small/ck/state/1/shards
  [ "$(stat -c %s "$sm")" -le 1500 ] || { echo "$sm is over 1500 bytes" >&2; exit 1; }
  k=$("$body_tool" list "$sm" | awk 'NR == 1 {print $1}')
  seed $((n * 16 + 6)) "$k" "$s/s$n-pack" < "$sm"
  body "$sm" | seed $((n * 16 + 7)) 0 "$s/s$n-pack.body"
done
echo "seeds written to $corpus"
