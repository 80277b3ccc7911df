#!/usr/bin/python3
"""W1 in group mode (`make bench-group`): 1, 2 and 3 instances of
tests/bench/jobs/w1_group.yaml, one consumer group, on the real Apache
Kafka broker, in one run.

    group.py --build DIR [--records N] [--partitions P] [--runs R]
             [--instances 1,2,3] [--brokers-file FILE] [--json FILE]
             [--report FILE.md]

The input: `sluice produce --seed 1` (tests/bench/run.py's records),
6 million by default, into a topic of P partitions (12 by default). A run of N instances starts them at
once, each with its own checkpoint and metrics port, the same group id
(new for each run) and a new output topic; it follows the group's
committed offsets (written inside the sink's transactions) every 10 ms,
and the instances' /metrics, until the offsets reach the end of every
partition, then reads each instance's CPU seconds from /proc, stops them
(SIGTERM, each must exit 0) and takes each one's peak RSS from wait4.
The output topic must then hold, read_committed, as many records as
sluice's W1 writes (the buys), exactly once.

Per run: wall from spawn to the end of the input, records/s of the
whole run, the steady state (records/s while the group's offsets went
from 20 % to 80 % of the input, which leaves the join out) of the group
and per instance, CPU microseconds per record (all instances), the
largest peak RSS, the time until the group had assigned every partition
(the join: every instance's first rebalance, incremental and cooperative),
and the rebalance time the instances' hooks report
(sluice_group_rebalance_seconds_total: finishing in-flight work, claims,
reading positions). W0, the bare consumer (tests/bench/consume.c) on the
same topic, is the floor; every figure is also given as a ratio to the
one-instance run of the same round. Medians of --runs rounds (5), one
run of each configuration per round, with their spread.

The machine has 2 cores: more instances add processes, not cores, so the
table shows the cost of sharing (records/s per instance, the join), not
a speed-up.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "peers"))
import compare  # noqa: E402
from run import free_port, log, proc_cpu_s, write_report  # noqa: E402

BEGIN = "<!-- bench-group:begin -->"
END = "<!-- bench-group:end -->"


def metrics(port):
    """An instance's /metrics as {name: value} (series without labels)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                    timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, _, v = line.partition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Group(compare.Peers):
    def group_offsets(self, group):
        """The sum of the group's committed offsets on the input."""
        from confluent_kafka import Consumer, TopicPartition
        c = self.offsets_consumers.get(group)
        if c is None:
            c = Consumer({"bootstrap.servers": self.brokers,
                          "group.id": group, "enable.auto.commit": False})
            self.offsets_consumers[group] = c
        parts = [TopicPartition(self.topic, i)
                 for i in range(self.a.partitions)]
        got = c.committed(parts, timeout=10)
        return sum(max(p.offset, 0) for p in got)

    def run_group(self, n):
        self.runs_n += 1
        run = "%d-%d" % (os.getpid(), self.runs_n)
        group = "bench-group-%s" % run
        out_topic = self.topic_name("w1g-out")
        self.create_topic(out_topic, self.a.partitions)
        procs = []
        t0 = time.monotonic()
        for i in range(n):
            out = self.fresh("g%d-%d" % (n, i))
            env = self.env(out)
            port = free_port()
            env.update(BENCH_RUN=run, BENCH_GROUP=group,
                       BENCH_OUT_TOPIC=out_topic,
                       BENCH_METRICS_PORT=str(port))
            err = open(os.path.join(out, "stderr"), "w")
            p = subprocess.Popen(
                [self.sluice, "run",
                 os.path.join(HERE, "jobs", "w1_group.yaml"),
                 "--progress", "none"],
                env=env, stdout=subprocess.DEVNULL, stderr=err)
            procs.append((p, port, out))
        joined = None
        samples = []  # (seconds since spawn, the group's offsets)
        deadline = t0 + 600
        try:
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise SystemExit("bench: %d instances did not reach the "
                                     "end in 600 s" % n)
                for p, _, out in procs:
                    if p.poll() is not None:
                        raise SystemExit(
                            "bench: an instance exited %d:\n%s" %
                            (p.returncode,
                             open(os.path.join(out, "stderr")).read()[-3000:]))
                if joined is None:
                    ms = [metrics(port) for _, port, _ in procs]
                    owned = [m.get("sluice_group_assigned_partitions", 0)
                             for m in ms]
                    if all(o >= 1 for o in owned) and \
                            sum(owned) == self.a.partitions:
                        joined = now - t0
                done = self.group_offsets(group)
                samples.append((time.monotonic() - t0, done))
                if done >= self.total:
                    wall = time.monotonic() - t0
                    break
                time.sleep(0.01)
            ms = [metrics(port) for _, port, _ in procs]
            cpu = sum(proc_cpu_s(p.pid) for p, _, _ in procs)
        finally:
            for p, _, _ in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        rss = 0
        for p, _, out in procs:
            _, status, ru = os.wait4(p.pid, 0)
            rc = os.waitstatus_to_exitcode(status)
            p.returncode = rc
            if rc != 0:
                raise SystemExit("bench: an instance exited %d after "
                                 "SIGTERM:\n%s" % (rc, open(os.path.join(
                                     out, "stderr")).read()[-3000:]))
            rss = max(rss, ru.ru_maxrss * 1024)
        f = self.follow_topic(out_topic)
        f.start(time.monotonic())
        got = self.topic_count(out_topic, f)
        f.consumer.close()
        if got != self.expected_out:
            raise SystemExit("bench: %d instances wrote %d records, W1 "
                             "writes %d" % (n, got, self.expected_out))
        # the steady state: records/s while the group's offsets went from
        # 20 % to 80 % of the input (after the join, in these runs)
        a = next(x for x in samples if x[1] >= 0.2 * self.total)
        b = next(x for x in samples if x[1] >= 0.8 * self.total)
        steady = (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else None
        return {
            "instances": n,
            "wall_s": wall,
            "records_per_s": self.total / wall,
            "steady_records_per_s": steady,
            "steady_from_s": a[0],
            "per_instance_records_per_s": self.total / wall / n,
            "cpu_s": cpu,
            "cpu_us_per_record": cpu * 1e6 / self.total,
            "peak_rss_bytes": rss,
            "join_s": joined,
            "rebalance_s": sum(m.get("sluice_group_rebalance_seconds_total",
                                     0) for m in ms),
            "rebalances": sum(m.get("sluice_group_rebalances_total", 0)
                              for m in ms),
            "out": got,
        }

    def expected(self):
        """W1's output count: the buys among the records (one read of the
        input with kcat, counted by grep: the harness holds none of it, so
        that the instances it forks do not start from a large RSS)."""
        p = subprocess.run(
            "kcat -b '%s' -C -t '%s' -e -q -f '%%s\n' | grep -c '\"event\":\"buy\"'"
            % (self.brokers, self.topic), shell=True, capture_output=True,
            text=True, timeout=600)
        if not p.stdout.strip().isdigit():
            raise SystemExit("bench: cannot count the buys: " + p.stderr)
        return int(p.stdout)

    def main(self):
        a = self.a
        self.offsets_consumers = {}
        self.redis_port = 0  # no Redis: W1 writes to Kafka
        self.start_broker()
        try:
            self.produce_input()
            self.expected_out = self.expected()
            counts = [int(x) for x in a.instances.split(",")]
            rows = {"W0": []}
            rows.update({n: [] for n in counts})
            for r in range(a.runs):
                log("round %d of %d" % (r + 1, a.runs))
                m = self.w0_real()
                rows["W0"].append(m)
                log("  W0: %.2f s" % m["wall_s"])
                for n in counts:
                    m = self.run_group(n)
                    rows[n].append(m)
                    log("  %d instance%s: %.2f s, %.0f records/s, join %.2f s"
                        % (n, "" if n == 1 else "s", m["wall_s"],
                           m["records_per_s"], m["join_s"] or -1))
            self.results = rows
        finally:
            for c in self.offsets_consumers.values():
                c.close()
            self.stop()
            if self.broker:
                self.broker.stop()


def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.median(xs), (max(xs) - min(xs))


def report(res, a, facts):
    w0 = res["W0"]
    lines = ["### W1 in group mode: 1, 2 and 3 instances (real broker)", "",
             "`make bench-group` (tests/bench/group.py): %d records in %d "
             "partitions of the real broker, tests/bench/jobs/w1_group.yaml "
             "(W1's pipeline, exactly once into a Kafka topic, interval "
             "trigger 100 ms, 2 workers per instance), N instances of one "
             "group started at once and followed until the group's offsets "
             "reach the end. Median of %d rounds (spread: max - min). %s" %
             (a.records, a.partitions, a.runs, facts), "",
             "| run | wall s | records/s (whole run) | steady records/s "
             "| steady per instance | steady vs 1 instance "
             "| CPU µs/record | vs W0 CPU | peak RSS MB | join s "
             "| rebalance hooks s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    w0_cpu, _ = med([m["cpu_us_per_record"] for m in w0])
    w0_wall, w0_sp = med([m["wall_s"] for m in w0])
    w0_rate, _ = med([m["records_per_s"] for m in w0])
    lines.append("| W0 (bare consumer, the floor) | %.2f ± %.2f | %.0f | – | – | – "
                 "| %.2f | 1.00 | %.0f | – | – |" %
                 (w0_wall, w0_sp, w0_rate, w0_cpu,
                  med([m["peak_rss_bytes"] for m in w0])[0] / 1e6))
    one = [m["steady_records_per_s"] for m in res.get("1", res.get(1, []))
           if m.get("steady_records_per_s")]
    for n in sorted(k for k in res if k != "W0"):
        ms = res[n]
        wall, sp = med([m["wall_s"] for m in ms])
        rate, _ = med([m["records_per_s"] for m in ms])
        steady, ssp = med([m.get("steady_records_per_s") for m in ms])
        per = steady / int(n) if steady else None
        ratio = "%.2f" % (steady / statistics.median(one)) \
            if one and steady else "–"
        cpu, _ = med([m["cpu_us_per_record"] for m in ms])
        rss, _ = med([m["peak_rss_bytes"] for m in ms])
        join, jsp = med([m["join_s"] for m in ms])
        reb, _ = med([m["rebalance_s"] for m in ms])
        # no join figure when the input was done before every instance
        # had partitions (tiny inputs)
        join_s = "–" if join is None else "%.2f ± %.2f" % (join, jsp)
        steady_s = "–" if steady is None else "%.0f ± %.0f" % (steady, ssp)
        per_s = "–" if per is None else "%.0f" % per
        lines.append("| %d instance%s | %.2f ± %.2f | %.0f | %s | %s | %s "
                     "| %.2f | %.2f | %.0f | %s | %.3f |" %
                     (int(n), "" if int(n) == 1 else "s", wall, sp, rate,
                      steady_s, per_s, ratio, cpu, cpu / w0_cpu, rss / 1e6,
                      join_s, reb))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--records", type=int, default=6_000_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--instances", default="1,2,3")
    ap.add_argument("--brokers-file")
    ap.add_argument("--json")
    ap.add_argument("--from-json")
    ap.add_argument("--report")
    a = ap.parse_args()
    # compare.Peers' set-up reads these
    a.watermark_ms, a.peers, a.heap, a.keep = 300_000, "", "2g", False
    a.latency_seconds, a.note = 0, ""
    if a.from_json:
        doc = json.load(open(a.from_json))
    else:
        g = Group(a)
        g.main()
        doc = {"results": {str(k): v for k, v in g.results.items()},
               "facts": "CPU: %s; librdkafka and the broker as in the tests "
                        "(Apache Kafka 4.1.1)." % compare_cpu()}
        if a.json:
            json.dump(doc, open(a.json, "w"), indent=1)
    text = report(doc["results"], a, doc["facts"])
    print(text)
    if a.report:
        write_report(a.report, text, BEGIN, END)


def compare_cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return "%s, %d cores" % (line.split(":", 1)[1].strip(),
                                     os.cpu_count())
    return "%d cores" % os.cpu_count()


if __name__ == "__main__":
    main()
