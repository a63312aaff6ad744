from __future__ import annotations

import json

import pytest

from bitnas.errors import SpecError
from bitnas.spaces import bitops
from bitnas.spaces.allocation import allocation_of
from bitnas.spaces.architecture import Architecture
from bitnas.studies import StudySpec
from bitnas.studies.api import open_result, run
from bitnas.studies.cli import main
from bitnas.studies.sweep import cells
from tests.conftest import SMALL_SPACE_TABLE

BASE = {
    "study": {"name": "sv", "trials": 3, "storage": "sqlite:///x.db"},
    "data": {"name": "digits"},
    "space": dict(SMALL_SPACE_TABLE),
    "train": {"epochs": 1},
}


def spec_with(sweep: dict[str, object], **space: object) -> StudySpec:
    d = json.loads(json.dumps(BASE))
    d["space"].update(space)
    d["sweep"] = sweep
    return StudySpec.from_dict(d, source="sv.toml")


def test_a_sweep_is_one_study_per_family_budget_and_seed():
    spec = spec_with({"budgets": [30_000, 60_000], "seeds": [3, 4]})
    got = cells(spec)
    assert len(got) == 3 * 2 * 2
    names = [c.name for c, _ in got]
    assert names[0] == "sv/binary_spikes/30000/seed3"
    assert len(set(names)) == len(names)
    for cell, cs in got:
        assert cs.sweep is None and cs.budget.bitops == cell.budget
        assert cs.study.trials == 3 and cs.study.seed == cell.seed
        assert cs.study.storage == "sqlite:///x.db"
        for arch in cs.space.grid():
            assert allocation_of(arch.timesteps, arch.abits) == cell.allocation


def test_one_seed_names_cells_without_a_seed_suffix():
    spec = spec_with({"allocation": ["multibit_spikes"], "budgets": [60_000]})
    ((cell, cs),) = cells(spec)
    assert cell.name == "sv/multibit_spikes/60000" and cs.study.seed == 0


@pytest.mark.parametrize(
    ("sweep", "space", "message"),
    [
        ({"budgets": [1000]}, {}, "no binary_spikes architecture fits the budget of 1,000 BitOps"),
        ({"budgets": []}, {}, "`budgets` must be a non-empty list of integers, got []"),
        ({"budgets": [5, 5]}, {}, "`budgets` must not repeat an entry"),
        ({"budgets": [9e4]}, {}, "every `budgets` entry must be an integer >= 1, got 90000.0"),
        (
            {"budgets": [60_000], "allocation": ["ternary"]},
            {},
            "every `allocation` entry must be one of",
        ),
        ({"budgets": [60_000], "seeds": [-1]}, {}, "every `seeds` entry must be an integer >= 0"),
        (
            {"budgets": [60_000], "budget": 1},
            {},
            "unknown key `budget` in [sweep]; did you mean `budgets`?",
        ),
        (
            {"budgets": [60_000]},
            {"timesteps": [1]},
            "'binary_spikes' needs `timesteps` to offer a choice > 1",
        ),
    ],
)
def test_bad_sweeps_are_clear_errors(sweep, space, message):
    with pytest.raises(SpecError) as e:
        spec_with(sweep, **space)
    assert message in str(e.value) and "sv.toml" in str(e.value)


def test_a_sweep_is_not_one_study(tmp_path):
    spec = spec_with({"budgets": [60_000]})
    with pytest.raises(SpecError, match="is a sweep"):
        run(spec)
    with pytest.raises(SpecError, match="is a sweep of 3 studies; name one"):
        open_result(spec)


SWEEP_TOML = """
[study]
name = "sv"
storage = "sqlite:///{db}"
trials = 3
[data]
name = "digits"
[space]
depth = [1, 2]
width = [16, 32]
wbits = [2, 4]
abits = [1, 2]
timesteps = [1, 2]
[train]
epochs = 1
[sweep]
budgets = [30_000, 60_000]
"""


@pytest.mark.slow
def test_bitnas_run_trains_every_cell_within_its_family_and_budget(tmp_path, capsys):
    path = tmp_path / "sv.toml"
    path.write_text(SWEEP_TOML.format(db=tmp_path / "sv.db"))
    assert main(["run", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sweep of 6 studies done" in out
    spec = StudySpec.from_dict(__import__("tomllib").loads(path.read_text()), source=str(path))
    for cell, cs in cells(spec):
        result = open_result(cs)
        trained = [
            t for t in result.study.trials if t.state.name == "COMPLETE" and t.values is not None
        ]
        assert result.counts()["finished"] == 3
        for t in trained:
            arch = Architecture.from_json(t.user_attrs["architecture"])
            assert allocation_of(arch.timesteps, arch.abits) == cell.allocation
            assert bitops(arch) <= cell.budget
    # a second run continues every cell instead of adding trials
    assert main(["run", str(path), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("added 0 finished trials") == 6
