"""A study's artifact folder and the Pareto plot a run attaches to the study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import bitnas
from bitnas.errors import SpecError
from bitnas.search import Problem, optimize
from bitnas.spaces import Budget
from bitnas.studies import StudySpec
from bitnas.studies.study_artifacts import PARETO_FILENAME, artifact_dir, pareto_png
from tests.conftest import SpyEvaluator, small_space, small_study_toml

PNG = b"\x89PNG\r\n\x1a\n"


def test_configured_folder_wins_over_the_default():
    assert artifact_dir("sqlite:///runs/a.db") == Path("runs/a.artifacts")
    assert artifact_dir("sqlite:///runs/a.db", "elsewhere") == Path("elsewhere")


def test_spec_accepts_an_artifacts_folder_and_refuses_a_non_string():
    base = {"data": {"name": "digits"}, "space": {"depth": [1, 2]}}
    spec = StudySpec.from_dict({"study": {"name": "a", "artifacts": "out/art"}, **base})
    assert spec.study.artifacts == "out/art"
    with pytest.raises(SpecError, match=r"`artifacts` must be a folder path .* got 3"):
        StudySpec.from_dict({"study": {"name": "a", "artifacts": 3}, **base})


def test_pareto_png_draws_a_study():
    problem = Problem(space=small_space(), evaluator=SpyEvaluator(), budget=Budget(50_000))
    study = optuna.create_study(directions=problem.directions)
    study.set_metric_names(problem.metric_names)
    optimize(study, problem, 6, progress=False)
    png = pareto_png(study, budget=50_000)
    assert png.startswith(PNG) and len(png) > 10_000
    # an empty study still gives a picture (axes only), not an error
    empty = optuna.create_study(directions=problem.directions)
    assert pareto_png(empty).startswith(PNG)


@pytest.mark.slow
def test_run_attaches_architectures_and_a_pareto_plot(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        small_study_toml("art", bitops="60_000", epochs=1, storage=f"sqlite:///{tmp_path}/s.db")
    )
    result = bitnas.run(f, trials=3, progress=False)
    folder = tmp_path / "s.artifacts"
    study = result.study
    (meta,) = optuna.artifacts.get_all_artifact_meta(study)
    assert meta.filename == PARETO_FILENAME
    assert (folder / meta.artifact_id).read_bytes().startswith(PNG)
    for t in study.trials:
        (tm,) = optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)
        assert tm.filename == f"architecture-{t.number}.json"
        assert (folder / tm.artifact_id).is_file()
    # a second run refreshes the same plot instead of adding another
    again = bitnas.run(f, trials=4, progress=False)
    assert [m.artifact_id for m in optuna.artifacts.get_all_artifact_meta(again.study)] == [
        meta.artifact_id
    ]
