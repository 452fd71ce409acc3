#!/usr/bin/env bash
# Where soak's crash → respawn time goes, phase by phase.
#
# Runs the respawn bench's service under `soak up` inside strace, kill -9's it
# N times (default 50) and prints the median and p90 of each phase. strace
# uses a seccomp filter and traces only a handful of rare syscalls, so the
# untraced work (reading /proc, parsing, soak's own logic) runs at full speed;
# a fork still costs strace an attach, so the spawn phases read a little high.
#
#   bench/respawn-phases.sh [N]      (after cargo build --release -p soak)
set -euo pipefail
n=${1:-50}
cd "$(dirname "$0")/.."
soak=$PWD/target/release/soak
dir=$(mktemp -d /tmp/soak-respawn-phases.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
mkfifo "$dir/fifo"
cat >"$dir/soak.toml" <<EOF
[harness]
reports = "$dir/reports"
[services.victim]
command = ["sh", "-c", "echo \$\$ > $dir/fifo; exec sleep 100000"]
restart = "always"
restart_delay = "0"
throttle = "0"
backoff = { factor = 1.0, max = "0" }
start_limit = { burst = 100000, interval = "1s" }
EOF

# Read+write, so the FIFO never reports EOF between two writers.
exec 3<>"$dir/fifo"
strace -f --seccomp-bpf -ttt -o "$dir/trace" -e signal=none \
    -e trace=execve,clone,clone3,wait4,write,exit_group \
    "$soak" up --config "$dir/soak.toml" >"$dir/soak.log" 2>&1 &
tracer=$!
read -r -t 10 pid <&3
for _ in $(seq "$n"); do
    sleep 0.1
    # Builtins only (no fork between the timestamp and the kill). strace
    # does not see this shell, so the kill times come from here.
    echo "$pid $EPOCHREALTIME" >>"$dir/kills"
    kill -9 "$pid"
    read -r -t 5 pid <&3
done
# soak is strace's only child: stop it by its pid, as Ctrl-C would.
kill -INT "$(cat "/proc/$tracer/task/$tracer/children")"
wait "$tracer"

python3 - "$dir/trace" "$dir/kills" "$soak" <<'EOF'
import re, sys, statistics
path, kills, soak = sys.argv[1:]
ev = []
for line in open(path):
    m = re.match(r'(\d+)\s+([\d.]+)\s+(.*)', line)
    if m:
        ev.append((int(m[1]), float(m[2]) * 1e3, m[3]))
# Shims are the processes that exec'd soak's binary as `__shim`; a standby
# shim is exec'd long before it is needed, so it is off the respawn path.
shims = {p for p, _, x in ev if x.startswith(f'execve("{soak}"') and '"__shim"' in x}
phases = {k: [] for k in [
    "kill -> shim reaps the victim",
    "reap -> exit report written (settle, tree walk)",
    "report -> soak hands the standby its spec",
    "spec -> standby forks the service",
    "fork -> service writes its pid",
    "total: kill -> pid written",
]}
names = list(phases)
keys = ["kill", "reap", "report", "spec", "fork", "fifo"]
for line in open(kills):
    pid, t0 = line.split()
    pid, t0 = int(pid), float(t0) * 1e3
    t = {"kill": t0}
    first = next((i for i, e in enumerate(ev) if e[1] >= t0), len(ev))
    rest = iter(ev[first:])
    shim = None
    for p, ts, x in rest:
        if x.startswith("wait4(-1") and x.endswith(f"= {pid}"):
            t["reap"], shim = ts, p
            break
    for p, ts, x in rest:
        if p == shim and x.startswith('write(1, "{\\"report\\":\\"exited'):
            t["report"] = ts
            break
    for p, ts, x in rest:
        if p not in shims and x.startswith("write(") and '{\\"argv\\"' in x:
            t["spec"] = ts
            break
    victim = None
    for p, ts, x in rest:
        if p in shims and p != shim and x.startswith(("clone(", "clone3(")):
            t.setdefault("fork", ts)
        # The child's pid ends the call's line, or its "resumed" line when
        # another process's line interrupted it.
        if "fork" in t and p in shims and p != shim and "clone" in x and re.search(r"= \d+$", x):
            victim = int(x.rsplit("=", 1)[1])
            break
    for p, ts, x in rest:
        if p == victim and re.match(r'write\(1, "\d+\\n"', x):
            t["fifo"] = ts
            break
    if all(k in t for k in keys):
        for name, a, b in zip(names, keys, keys[1:]):
            phases[name].append(t[b] - t[a])
        phases[names[-1]].append(t["fifo"] - t["kill"])
count = len(phases[names[-1]])
print(f"{count} respawns; ms per phase (median / p90)")
for name, v in phases.items():
    if v:
        v.sort()
        print(f"  {name:<55} {statistics.median(v):7.2f} / {v[int(0.9 * (len(v) - 1))]:7.2f}")
EOF
tcp=$(($(wc -l </proc/net/tcp) + $(wc -l </proc/net/tcp6) - 2))
echo "TCP sockets on this host (all states, /proc/net/tcp + tcp6): $tcp"
