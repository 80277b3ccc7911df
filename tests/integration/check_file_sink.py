#!/usr/bin/env python3
"""Checks the output of the file sink against generated input.

usage: check_file_sink.py OUT_DIR COUNT [FIRST]

Reads only what the manifest lists (what a reader may trust), and checks
that the records with ids 0..COUNT-1 are there exactly once each, that
every listed file exists with the listed record count, and that no batch
id is missing between 1 and the newest one.
"""
import json
import os
import re
import sys
import zlib


def unseal(path):
    """The body of a sealed file, after checking its trailer."""
    data = open(path, "rb").read()
    at = data.rfind(b"#sluice-checksum ")
    m = re.match(rb"#sluice-checksum crc32=([0-9a-f]{8}) len=(\d+)\n$", data[at:])
    if at < 0 or not m or int(m.group(2)) != at:
        raise SystemExit(f"{path}: bad trailer")
    if zlib.crc32(data[:at]) != int(m.group(1), 16):
        raise SystemExit(f"{path}: checksum mismatch")
    return json.loads(data[:at])


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    mdir = os.path.join(out, "_manifest")
    batches = sorted(int(n) for n in os.listdir(mdir) if n.isdigit())
    if not batches:
        raise SystemExit("no committed batch")
    if batches != list(range(1, batches[-1] + 1)):
        missing = sorted(set(range(1, batches[-1] + 1)) - set(batches))
        raise SystemExit(f"manifest batches missing: {missing[:10]}")
    seen = bytearray(count)
    dup = 0
    total = 0
    for b in batches:
        m = unseal(os.path.join(mdir, str(b)))
        if m["batch"] != b:
            raise SystemExit(f"manifest {b} says batch {m['batch']}")
        for f in m["files"]:
            lines = open(os.path.join(out, f["name"]), "rb").read().splitlines()
            if len(lines) != f["records"]:
                raise SystemExit(
                    f"{f['name']}: {len(lines)} lines, manifest says {f['records']}")
            for line in lines:
                rec = json.loads(line)
                i = rec["id"]
                if not first <= i < count:
                    raise SystemExit(f"unexpected id {i}")
                if seen[i]:
                    dup += 1
                seen[i] = 1
                total += 1
    missing = count - first - sum(seen)
    if dup or missing:
        raise SystemExit(
            f"not exactly once: {total} records, {dup} duplicates, {missing} missing")
    print(f"ok: {count - first} records exactly once in {len(batches)} batches")


if __name__ == "__main__":
    main()
