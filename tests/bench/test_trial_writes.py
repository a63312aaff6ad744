"""bench/trial_writes.py as docs/BENCHMARKS.md runs it (smaller): one table row per storage and
code, the transactions counted the same way for a baseline checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def test_the_documented_command_counts_transactions_against_a_baseline():
    # the baseline: this same checkout, so both rows must count the same transactions
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "trial_writes.py"), "--trials", "8", "--repeats",
         "1", "--storages", "sqlite", "journal", "--compare-with", str(ROOT)],
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=600,
    ).stdout  # fmt: skip
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    rows = [[c.strip() for c in r] for r in rows if r[0].strip() in ("sqlite", "journal")]
    assert [(r[0], r[1]) for r in rows] == [
        ("sqlite", "this code"), ("sqlite", str(ROOT)),
        ("journal", "this code"), ("journal", str(ROOT)),
    ]  # fmt: skip
    for kind in ("sqlite", "journal"):
        mine, base = (r for r in rows if r[0] == kind)
        assert mine[4] == base[4] and 5 < float(mine[4]) < 25  # transactions per trial
    assert float(rows[2][5]) > float(rows[2][4])  # journal: more records than appends
