"""Helpers for tests of one study shared by several `bitnas run` processes: a study file on a
table (no training), the processes, and the checks every shared study must pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.search import counts, open_storage
from tests.conftest import small_study_toml, write_curve_table

#: 48 MLP architectures, every one within the budget: the study's target can be reached
#: without training anything twice, and samplers still repeat themselves now and then.
SPACE = "[space]\ndepth = [1, 2]\nwidth = [16, 32, 48]\nwbits = [2, 4]\nabits = [1, 2]\n"


def curve(arch: object) -> list[float]:
    from tests.conftest import synthetic_accuracy

    return [synthetic_accuracy(arch)]  # type: ignore[arg-type]


def table_study(tmp_path: Path, name: str, storage: str, trials: int, extra: str = "") -> Path:
    """A study file on a hand-made table (tests/conftest.py): trials cost milliseconds."""
    from bitnas.studies.spec import StudySpec

    text = small_study_toml(name, bitops="1e12", epochs=1, storage=storage)
    text = re.sub(r"\[space\]\n(.*\n){5}", SPACE + "timesteps = [1, 2]\n", text)
    text = text.replace("trials = 5", f"trials = {trials}")
    table = tmp_path / f"{name}.parquet"
    text += f'[table]\npath = "{table}"\n{extra}'
    f = tmp_path / f"{name}.toml"
    f.write_text(text)
    write_curve_table(table, StudySpec.from_dict(tomllib.loads(text)).space, curve)
    return f


def start(f: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`bitnas run f` in f's folder (a database study's artifacts go to runs/ there)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bitnas", "run", str(f), "--no-progress", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=f.parent,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )  # fmt: skip


def finish(runs: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[str, str]]:
    outs = [p.communicate(timeout=timeout) for p in runs]
    for p, (out, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
    return outs


def added(out: str) -> int:
    m = re.search(r"added (\d+) finished trials", out)
    assert m, out
    return int(m.group(1))


def trained(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that trained (looked up) their architecture: not re-told repeats."""
    return [
        t for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and "duplicate_of" not in t.user_attrs and "rejected" not in t.user_attrs
    ]  # fmt: skip


def check_shared_study(url: str, name: str, target: int) -> list[FrozenTrial]:
    """The study holds exactly ``target`` finished trials, each architecture trained once,
    nothing RUNNING, trial numbers without gaps; every repeat names a trial that trained its
    architecture. Returns its trials."""
    study = optuna.load_study(study_name=name, storage=open_storage(url, create=False))
    trials = study.get_trials()
    c = counts(trials)
    assert c["finished"] == target and c["running"] == 0, c
    assert [t.number for t in trials] == list(range(len(trials))), "a trial was lost"
    keys = [t.user_attrs["arch_key"] for t in trained(trials)]
    assert len(keys) == len(set(keys)) == target, "an architecture was trained twice"
    for t in trials:
        if "duplicate_of" in t.user_attrs:
            src = trials[t.user_attrs["duplicate_of"]]
            assert src.user_attrs["arch_key"] == t.user_attrs["arch_key"]
            assert src in trained(trials)
    return trials
