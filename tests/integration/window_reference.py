#!/usr/bin/env python3
"""An independent reference for the windowed jobs of the tests.

usage: window_reference.py RECORDS.jsonl SIZE_MS > expected.json

Reads the records (one JSON object per line, as produced), keeps the
"buy" events with amount > 0, and sums amount and counts per (tumbling
window of SIZE_MS by ts, user). Prints a JSON list of rows sorted by
(window_start, user), amounts rounded to cents.
"""
import json
import sys
from collections import defaultdict

size = int(sys.argv[2])
agg = defaultdict(lambda: [0.0, 0])
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    if r["event"] != "buy" or not r["amount"] > 0:
        continue
    start = r["ts"] // size * size
    a = agg[(start, r["user"])]
    a[0] += r["amount"]
    a[1] += 1
rows = [{"window_start": s, "window_end": s + size, "user": u,
         "revenue": float(round(v[0], 2)), "orders": v[1]}
        for (s, u), v in sorted(agg.items())]
json.dump(rows, sys.stdout)
