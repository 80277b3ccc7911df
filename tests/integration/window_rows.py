#!/usr/bin/env python3
"""The rows a file sink committed (manifest-listed files only).

usage: window_rows.py OUT_DIR [last]

Prints a JSON list of the rows sorted by (window_start, user). With
`last`, keeps for every (window_start, user) the row of the newest batch
(the final value of an update-mode window); without, fails if a window
appears twice (append mode emits each window once).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from check_file_sink import unseal  # noqa: E402

out = sys.argv[1]
last = len(sys.argv) > 2 and sys.argv[2] == "last"
mdir = os.path.join(out, "_manifest")
rows = {}
for b in sorted(int(n) for n in os.listdir(mdir) if n.isdigit()):
    m = unseal(os.path.join(mdir, str(b)))
    for f in m["files"]:
        for line in open(os.path.join(out, f["name"])):
            r = json.loads(line)
            k = (r["window_start"], r["user"])
            if k in rows and not last:
                raise SystemExit(f"window {k} emitted twice")
            r["revenue"] = float(round(r["revenue"], 2))
            rows[k] = r
json.dump([rows[k] for k in sorted(rows)], sys.stdout)
