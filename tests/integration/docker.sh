#!/usr/bin/env bash
# The Docker deployment, checked without a Docker engine:
#  1. docker-compose (Debian's) accepts docker/docker-compose.yml;
#  2. every `sluice run` in it names a job file (through the service's
#     volumes) that `sluice validate` accepts with the service's
#     environment;
#  3. the runtime stage of docker/Dockerfile installs the Debian package of
#     every shared library the binary needs, runs as a non-root user and
#     has a HEALTHCHECK on /health.
source "$(dirname "$0")/lib.bash" "$@"
compose="$SRC/docker/docker-compose.yml"
docker-compose -f "$compose" config -q 2>"$WORK/compose.err" ||
  fail "docker-compose config: $(cat "$WORK/compose.err")"
docker-compose -f "$compose" config >"$WORK/compose.yaml" 2>/dev/null
# Debian's python3 (python3-yaml comes with docker-compose).
/usr/bin/python3 - "$WORK/compose.yaml" "$SLUICE" <<'PY'
import os, subprocess, sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
sluice = sys.argv[2]
runs = 0
for name, svc in cfg["services"].items():
    if svc.get("image") != "sluice:local":
        continue
    cmd = svc.get("command") or []
    if not cmd or cmd[0] != "run":
        continue
    path = cmd[1]
    host = None
    for v in svc.get("volumes", []):
        src, dst = (v.split(":")[:2] if isinstance(v, str) else (v["source"], v["target"]))
        if path.startswith(dst.rstrip("/") + "/"):
            host = os.path.join(src, path[len(dst.rstrip("/")) + 1:])
    assert host and os.path.exists(host), f"{name}: {path} is not in a mounted folder"
    env = dict(os.environ)
    env.pop("KAFKA_BROKERS", None)
    env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
    host_job = host
    r = subprocess.run([sluice, "validate", host], env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{name}: sluice validate {host}: {r.stderr}"
    r = subprocess.run([sluice, "validate", host, "--print"], env=env, capture_output=True, text=True)
    assert "kafka:9092" in r.stdout and "redis://redis:6379/0" in r.stdout, r.stdout
    # `--scale sluice=3`: no fixed container name, a host port per
    # container, a checkpoint per container (from HOSTNAME, which Docker
    # sets), and a group-mode job
    assert "container_name" not in svc, f"{name}: container_name forbids --scale"
    for p in svc.get("ports", []):
        hp = str(p).split(":")[-2] if isinstance(p, str) else str(p.get("published", ""))
        lo, _, hi = hp.partition("-")
        assert hi and int(hi) - int(lo) + 1 >= 3, f"{name}: port {p} has no host port per container of --scale 3"
    dirs = set()
    for h in ("a1", "b2"):
        r = subprocess.run([sluice, "validate", host_job, "--print"], env=dict(env, HOSTNAME=h),
                           capture_output=True, text=True)
        dirs |= {l.strip() for l in r.stdout.splitlines() if l.strip().startswith("dir:")}
        assert "group:" in r.stdout, f"{name}: the job is not in group mode"
    assert len(dirs) == 2, f"{name}: two containers would share the checkpoint {dirs}"
    runs += 1
assert runs >= 1, "no sluice run in the compose file"
print(f"ok: {runs} job(s) of the compose file validate")
PY
# 3. The Dockerfile's runtime stage.
df="$SRC/docker/Dockerfile"
runtime=$(sed -n '/^FROM debian:bookworm-slim/,$p' "$df")
[ -n "$runtime" ] || fail "no debian:bookworm-slim stage"
grep -q '^USER sluice' <<<"$runtime" || fail "the runtime stage does not switch to a non-root user"
# (no `a | grep -q`: with pipefail an early exit of grep fails the pipe)
health=$(grep -A2 '^HEALTHCHECK' <<<"$runtime")
grep -q 'GET /health' <<<"$health" || fail "no HEALTHCHECK on /health"
for lib in $(readelf -d "$SLUICE" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  case "$lib" in libc.so.* | libm.so.* | ld-linux* | libasan* | libubsan*) continue ;; esac
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !f {print $NF; f = 1}')
  # By directory and file name (x86_64-linux-gnu/libX.so.N, not lib32's):
  # with merged /usr the package may list /lib or /usr/lib.
  real=$(readlink -f "$path")
  pkg=$(dpkg -S "*/$(basename "$(dirname "$real")")/$(basename "$real")" 2>/dev/null | awk -F: 'NR == 1 {print $1}')
  [ -n "$pkg" ] || fail "no Debian package owns $lib"
  grep -qw -- "$pkg" <<<"$runtime" || fail "the runtime stage does not install $pkg (for $lib)"
done
echo "ok: docker test"
