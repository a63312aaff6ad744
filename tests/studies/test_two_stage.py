"""A supernet study, then its front re-trained from scratch in its own, marked study."""

from __future__ import annotations

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta

import bitnas
from bitnas.errors import SpecError
from bitnas.search.export import front_trials
from bitnas.studies import StudySpec
from bitnas.studies.api import SUPERNET_FILENAME
from bitnas.studies.two_stage import ATTR_STAGE, retrain_front
from tests.conftest import SMALL_SPACE_TABLE

pytestmark = pytest.mark.slow


def spec(tmp_path, **extra):
    return StudySpec.from_dict(
        {
            "study": {"name": "sn", "storage": f"sqlite:///{tmp_path}/s.db", "trials": 6,
                      "sampler": "random"},
            "data": {"name": "digits"},
            "space": dict(SMALL_SPACE_TABLE),
            "budget": {"bitops": 60_000},
            "train": {"epochs": 2},
            **extra,
        }
    )  # fmt: skip


def test_supernet_study_then_retrained_front(tmp_path):
    sn = spec(tmp_path, supernet={"epochs": 2, "progress": False})
    first = bitnas.run(sn, progress=False)
    trials = first.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) >= 6
    assert (tmp_path / "sn.supernet.pt").is_file()
    names = [m.filename for m in get_all_artifact_meta(first.study)]
    assert SUPERNET_FILENAME in names
    front = front_trials(first.study)
    second = retrain_front(sn, progress=False)
    assert second.study.study_name == "sn-retrain"
    done = second.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert sorted(map(str, (t.params for t in done))) == sorted(map(str, (t.params for t in front)))
    assert second.study.user_attrs[ATTR_STAGE] == {"stage": "retrain", "of": "sn"}
    assert "supernet" not in second.study.user_attrs["bitnas_spec"]
    again = bitnas.open_result("sn", storage=sn.study.storage).study
    assert again.user_attrs[ATTR_STAGE]["retrained_in"] == "sn-retrain"


def test_retraining_needs_a_supernet_study(tmp_path):
    with pytest.raises(SpecError, match=r"no \[supernet\] section"):
        retrain_front(spec(tmp_path), progress=False)
