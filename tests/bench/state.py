#!/usr/bin/python3
"""Window state at scale (`make bench-state`): a snapshot of 10 million
keys, and its restore on restart, on the real Apache Kafka broker.

    state.py --build DIR [--keys N] [--partitions P] [--runs R]
             [--brokers-file FILE] [--json FILE] [--report FILE.md]

The input: `sluice produce --seed 1` (tests/bench/run.py's records), N of
them (10 million by default) into a topic of P partitions (8). The job,
tests/bench/jobs/state.yaml, keeps one key per record (group_by id) in
1-day windows with a 30-day watermark: nothing is emitted, every key stays
in the state, and the last batch's snapshot writes all of them.

A round is two runs of that job on one new checkpoint directory:
  run 1  available-now over the whole topic (batches of 2 million): its
         last batch's snapshot time is the "emit" and "state" figures
         sluice logs for that batch at debug level (the emit tasks
         serialize the changed shards, here every shard, and emit no row;
         then their pack and the index are written and fsynced);
  run 2  the same job again: it restores the state of its last batch
         (sluice logs the time, info level), finds nothing new, and exits.
Each is measured from outside as tests/bench/run.py measures (wall, CPU,
peak RSS from wait4). Beside them, the floors of the same round: writing
as many bytes as the snapshot's files hold into one file and fsyncing it,
and reading those files back (from the page cache, as the restore does
right after run 1). Medians of --runs rounds (3), with their spread; the
snapshot and restore are also given as ratios to their floors.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import compare  # noqa: E402
from run import log, measure, write_report  # noqa: E402

BEGIN = "<!-- bench-state:begin -->"
END = "<!-- bench-state:end -->"


def dir_bytes(d):
    n = 0
    for root, _, files in os.walk(d):
        for f in files:
            n += os.path.getsize(os.path.join(root, f))
    return n


class State(compare.Peers):
    def produce_keys(self):
        a = self.a
        self.topic = self.topic_name("state")
        self.create_topic(self.topic, a.partitions)
        self.produce(self.topic, a.keys, 1)
        self.total = a.keys

    def run_job(self, out, name):
        env = self.env(out)
        errf = os.path.join(out, "%s.err" % name)
        with open(errf, "w") as err:
            m = measure([self.sluice, "run", os.path.join(HERE, "jobs", "state.yaml"),
                         "--log-level", "debug", "--progress", "none"],
                        env=env, stdout=subprocess.DEVNULL, stderr=err)
        m["stderr"] = open(errf).read()
        if m["rc"] != 0:
            raise SystemExit("bench: state %s failed (exit %d):\n%s" %
                             (name, m["rc"], m["stderr"][-3000:]))
        return m

    def floors(self, ckpt, nbytes):
        """Writing nbytes into one file with an fsync, and reading the
        state's files back."""
        path = os.path.join(self.work, "floor.bin")
        chunk = os.urandom(1 << 20)
        t0 = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        left = nbytes
        while left > 0:
            left -= os.write(fd, chunk[:min(left, len(chunk))])
        os.fsync(fd)
        os.close(fd)
        write_s = time.monotonic() - t0
        os.unlink(path)
        t0 = time.monotonic()
        got = 0
        for root, _, files in os.walk(os.path.join(ckpt, "state")):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    while True:
                        b = fh.read(1 << 20)
                        if not b:
                            break
                        got += len(b)
        read_s = time.monotonic() - t0
        return write_s, read_s, got

    def round(self, r):
        out = self.fresh("state-%d" % r)
        m1 = self.run_job(out, "run1")
        # the snapshot: the emit tasks serialize the changed shards (no
        # row is emitted here), then the pack and the index are written
        snaps = [float(e) + float(st) for e, st in re.findall(
            r"batch \d+ window: merge [\d.]+, advance [\d.]+, emit ([\d.]+), "
            r"state ([\d.]+) ms", m1["stderr"])]
        if not snaps:
            raise SystemExit("bench: run 1 logged no window phase")
        ckpt = os.path.join(out, "ckpt")
        # the last batch's state files: the newest pack holds every shard
        state_dir = os.path.join(ckpt, "state")
        nbytes = dir_bytes(state_dir)
        m2 = self.run_job(out, "run2")
        g = re.search(r"window state restored from batch \d+: (\d+) windows, "
                      r"([\d.]+) MB, watermark -?\d+, in ([\d.]+) ms",
                      m2["stderr"])
        if not g:
            raise SystemExit("bench: run 2 did not restore the state:\n" +
                             m2["stderr"][-2000:])
        keys = int(g.group(1))
        if keys != self.a.keys:
            raise SystemExit("bench: run 2 restored %d keys, not %d" %
                             (keys, self.a.keys))
        write_s, read_s, _ = self.floors(ckpt, nbytes)
        res = {
            "keys": keys,
            "state_mb": float(g.group(2)),
            "snapshot_s": snaps[-1] / 1e3,
            "snapshots_s": [x / 1e3 for x in snaps],
            "restore_s": float(g.group(3)) / 1e3,
            "files_bytes": nbytes,
            "run1_wall_s": m1["wall_s"], "run1_cpu_s": m1["cpu_s"],
            "run1_rss": m1["peak_rss_bytes"],
            "run2_wall_s": m2["wall_s"], "run2_cpu_s": m2["cpu_s"],
            "run2_rss": m2["peak_rss_bytes"],
            "floor_write_s": write_s, "floor_read_s": read_s,
        }
        subprocess.run(["rm", "-rf", out])
        return res

    def main(self):
        self.redis_port = 0
        self.start_broker()
        try:
            self.produce_keys()
            rows = []
            for r in range(self.a.runs):
                log("round %d of %d" % (r + 1, self.a.runs))
                m = self.round(r)
                rows.append(m)
                log("  snapshot %.2f s (floor %.2f), restore %.2f s (floor "
                    "%.2f), %.0f MB of state, peak RSS %.0f MB" %
                    (m["snapshot_s"], m["floor_write_s"], m["restore_s"],
                     m["floor_read_s"], m["state_mb"], m["run1_rss"] / 1e6))
            self.results = rows
        finally:
            self.stop()
            if self.broker:
                self.broker.stop()


def med(xs):
    return statistics.median(xs), max(xs) - min(xs)


def report(rows, a):
    def cell(key, scale=1.0, fmt="%.2f"):
        m, sp = med([r[key] * scale for r in rows])
        return (fmt + " ± " + fmt) % (m, sp)

    keys = rows[0]["keys"]
    mk = keys / 1e6
    snap = statistics.median(r["snapshot_s"] for r in rows)
    fw = statistics.median(r["floor_write_s"] for r in rows)
    rest = statistics.median(r["restore_s"] for r in rows)
    fr = statistics.median(r["floor_read_s"] for r in rows)
    lines = [
        "### Window state of %d keys: snapshot and restore (real broker)" % keys,
        "",
        "`make bench-state` (tests/bench/state.py): %d records, one key each, "
        "in %d partitions; tests/bench/jobs/state.yaml (1-day windows, a "
        "30-day watermark: nothing is emitted, every key stays). Median of "
        "%d rounds (± max - min)." % (keys, a.partitions, a.runs),
        "",
        "| figure | value | floor (same round) | × floor |",
        "|---|---|---|---|",
        "| snapshot of the last batch, s | %s | %s (write + fsync of as many bytes) | %.1f |"
        % (cell("snapshot_s"), cell("floor_write_s"), snap / fw if fw else 0),
        "| restore on restart, s | %s | %s (read the state files, cached) | %.1f |"
        % (cell("restore_s"), cell("floor_read_s"), rest / fr if fr else 0),
        "| state files, MB | %s | | |" % cell("files_bytes", 1e-6, "%.0f"),
        "| state in memory (sluice's estimate), MB | %s | | |" % cell("state_mb", 1.0, "%.0f"),
        "| run 1 (read and keep %d keys): wall s | %s | | |" % (keys, cell("run1_wall_s")),
        "| run 1: CPU s | %s | | |" % cell("run1_cpu_s"),
        "| run 1: peak RSS, MB | %s | | |" % cell("run1_rss", 1e-6, "%.0f"),
        "| run 1: peak RSS per million keys, MB | %s | | |"
        % cell("run1_rss", 1e-6 / mk, "%.0f"),
        "| run 2 (restore, nothing new): wall s | %s | | |" % cell("run2_wall_s"),
        "| run 2: peak RSS, MB | %s | | |" % cell("run2_rss", 1e-6, "%.0f"),
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--keys", type=int, default=10_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--brokers-file")
    ap.add_argument("--json")
    ap.add_argument("--from-json")
    ap.add_argument("--report")
    a = ap.parse_args()
    a.records = a.keys
    a.watermark_ms, a.peers, a.heap, a.keep = 300_000, "", "2g", False
    a.latency_seconds, a.note = 0, ""
    if a.from_json:
        rows = json.load(open(a.from_json))["results"]
    else:
        s = State(a)
        s.main()
        rows = s.results
        if a.json:
            json.dump({"results": rows}, open(a.json, "w"), indent=1)
    text = report(rows, a)
    print(text)
    if a.report:
        write_report(a.report, text, BEGIN, END)


if __name__ == "__main__":
    main()
