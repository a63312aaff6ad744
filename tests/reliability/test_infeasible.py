"""An infeasible study is refused before any trial: nothing is written to its storage, and the
message says why (for a budget below the whole space, with the cheapest architecture's cost)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bitnas
from bitnas.errors import BudgetError, SpecError
from bitnas.search import counts
from tests.conftest import small_study_toml

ROOT = Path(__file__).resolve().parents[2]


def study_file(tmp_path: Path, **replace: str) -> tuple[Path, Path]:
    db = tmp_path / "inf.db"
    text = small_study_toml("inf", bitops="60_000", epochs=1, storage=f"sqlite:///{db}")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    f = tmp_path / "inf.toml"
    f.write_text(text)
    return f, db


# (line of the study file to change, its replacement, error type, message parts)
CASES = {
    "budget below the cheapest": (
        "bitops = 60_000", "bitops = 10_000", BudgetError,
        ["the budget of 10,000 BitOps is below the cheapest architecture",
         "mlp 64-16(w2a1)-10(w2) T=1 direct at 16,704 BitOps", "raise `bitops` in [budget]"],
    ),
    "empty choice list": (
        "width = [16, 32]", "width = []", SpecError,
        ["`width` must list at least one choice, got []", "(in [space] of"],
    ),
    "timesteps below 1": (
        "timesteps = [1, 2]", "timesteps = [0, 2]", SpecError,
        ["every `timesteps` choice must be an integer in 1..256, got 0", "(in [space] of"],
    ),
    "weight bits out of range": (
        "wbits = [2, 4]", "wbits = [2, 64]", SpecError,
        ["`wbits` must be an integer bit width in 1..16 or 32 (full precision), got 64"],
    ),
    "activation bits out of range": (
        "abits = [1, 2]", "abits = [0, 2]", SpecError,
        ["`abits` must be an integer bit width in 1..16 or 32 (full precision), got 0"],
    ),
    "empty depth range": (
        "depth = [1, 2]", "depth = [2, 1]", SpecError,
        ["`depth` must be an inclusive range [min, max] with 1 <= min <= max <= 64, got [2, 1]"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_infeasible_study_is_refused_before_any_trial(tmp_path, case):
    old, new, kind, parts = CASES[case]
    f, db = study_file(tmp_path, **{old: new})
    with pytest.raises(kind) as e:
        bitnas.run(f, progress=False)
    for part in parts:
        assert part in str(e.value)
    assert str(f) in str(e.value) or kind is BudgetError
    assert not db.exists(), "a refused study must not create its storage"


def test_an_existing_study_with_an_infeasible_budget_is_left_as_it_was(tmp_path):
    f, db = study_file(tmp_path)
    done = bitnas.run(f, trials=2, progress=False)
    assert counts(done.study.get_trials())["finished"] == 2
    before = db.read_bytes()
    f.write_text(f.read_text().replace("bitops = 60_000", "bitops = 16_703"))
    with pytest.raises(BudgetError, match="at 16,704 BitOps"):
        bitnas.run(f, trials=4, progress=False)
    assert db.read_bytes() == before
    assert counts(bitnas.open_result(f).study.get_trials())["finished"] == 2


def test_cli_refusal_exits_2_with_the_cheapest_cost(tmp_path):
    f, db = study_file(tmp_path, **{"bitops = 60_000": "bitops = 1"})
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([sys.executable, "-m", "bitnas", "run", str(f), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("bitnas: error: the budget of 1 BitOps is below the cheapest")
    assert "at 16,704 BitOps" in p.stderr
    assert not db.exists()
