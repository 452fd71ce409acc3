#!/usr/bin/env bash
# soak's own runtime lag during a soak of the fixtures with a fault every
# 30 s: the figures in the README's "soak's own runtime lag" table.
#   bench/runtime-lag.sh [MINUTES]      (default 10; needs a debug build)
# The scenario lives in a copy of scenarios/, since a schedule picks from its
# own folder and every file in scenarios/ is also a test.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r scenarios fixtures "$work"/
sed -i "s|\.\./target/debug/|$PWD/target/debug/|" "$work/fixtures/soak.toml"
cat > "$work/scenarios/lag-soak.toml" <<TOML
description = "the fixtures under load, a fault every 30 s"
config = "../fixtures/soak.toml"
workloads = ["items", "work"]
duration = "${minutes}m"

[schedule]
every = "30s"
pick = ["kill-gateway", "hang-gateway", "sqlite-lock-store", "blackhole-store", "latency-store"]
seed = 7
TOML
./target/debug/soak run "$work/scenarios/lag-soak.toml" --plain --reports "$work/reports" --report-every 30s >/dev/null || true
python3 - "$work/reports/latest/journal.sqlite" <<'PY'
import sqlite3, statistics, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT p99_ms, max_ms FROM runtime_lag").fetchall()
p99s = sorted(r[0] for r in rows)
print(f"{len(rows)} intervals; median of per-interval p99 {statistics.median(p99s):.1f} ms; "
      f"p99 of them {p99s[int(0.99 * (len(p99s) - 1))]:.1f} ms; max {max(r[1] for r in rows):.0f} ms")
PY
