"""bench/ray_overhead.py as docs/BENCHMARKS.md runs it (smaller): a row per backend, the two
local processes sharing one study's target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_the_documented_command_reports_every_backend():
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ray_overhead.py"), "--trials", "4", "--seconds",
         "0.2"],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env,
    ).stdout  # fmt: skip
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[-1].endswith("%"):
            rows[" ".join(parts[:-3])] = float(parts[-1].rstrip("%")) / 100
    assert list(rows) == ["local", "ray, 1 worker", "ray, 2 workers", "local, 2 procs"]
    assert all(0 < eff <= 1.05 for eff in rows.values()), rows
