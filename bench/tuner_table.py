#!/usr/bin/env python3
"""Turns the table printed by tests/tests/tuner.rs `bench_decision_to_verified_applied` (read on
stdin) into markdown: medians and max of each phase, split into the agent's own time and the
time systemd and the restarted service take. Exits 1 when the test printed no rows."""

import statistics
import sys

COLS = ["write+fsync", "reload", "restart job (systemd)", "verify (incl. start-up)", "last check", "total", "agent's own"]

rows = []
for line in sys.stdin:
    cells = [c.strip() for c in line.split("|")]
    if len(cells) == len(COLS) + 1 and cells[0].isdigit():
        rows.append([float(c) for c in cells[1:]])
if not rows:
    sys.exit("tuner_table: the tuner bench printed no rows")

print(f"{len(rows)} applies, each a change of OLLAMA_NUM_PARALLEL (ms):\n")
print("| phase | median ms | min ms | max ms |")
print("|---|---:|---:|---:|")
for i, name in enumerate(COLS):
    col = [r[i] for r in rows]
    print(f"| {name} | {statistics.median(col):.2f} | {min(col):.2f} | {max(col):.2f} |")
agent = statistics.median(r[6] for r in rows)
total = statistics.median(r[5] for r in rows)
print(f"\n- split: the agent's own time {agent:.2f} ms (median) of {total:.1f} ms total; the rest "
      f"({total - agent:.1f} ms) is systemd's reload and restart job and the stand-in's start-up.")
