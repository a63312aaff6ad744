"""A supernet study, then its front (and the layer behind it) re-trained from scratch in its
own, marked study: through the API and as a user runs it (`bitnas retrain`)."""

from __future__ import annotations

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta

import bitnas
from bitnas.errors import SpecError
from bitnas.search.export import front_trials
from bitnas.studies import StudySpec
from bitnas.studies.api import SUPERNET_FILENAME
from bitnas.studies.cli import main
from bitnas.studies.two_stage import ATTR_STAGE, DEFAULT_LAYERS, retrain_front
from tests.conftest import SMALL_SPACE_TABLE, small_study_toml

pytestmark = pytest.mark.slow


def spec(tmp_path, **extra):
    return StudySpec.from_dict(
        {
            "study": {"name": "sn", "storage": f"sqlite:///{tmp_path}/s.db", "trials": 12,
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
    assert len(trials) >= 12
    assert (tmp_path / "sn.supernet.pt").is_file()
    names = [m.filename for m in get_all_artifact_meta(first.study)]
    assert SUPERNET_FILENAME in names
    front = front_trials(first.study)
    picked = front_trials(first.study, layers=DEFAULT_LAYERS)
    assert DEFAULT_LAYERS == 2 and len(picked) > len(front)  # the layer behind the front too
    second = retrain_front(sn, progress=False)
    assert second.study.study_name == "sn-retrain"
    done = second.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert sorted(map(str, (t.params for t in done))) == sorted(
        map(str, (t.params for t in picked))
    )
    assert [t.params for t in done] == [t.params for t in picked]  # layer by layer, cheapest first
    assert second.study.user_attrs[ATTR_STAGE] == {"stage": "retrain", "of": "sn", "layers": 2}
    assert "supernet" not in second.study.user_attrs["bitnas_spec"]
    again = bitnas.open_result("sn", storage=sn.study.storage).study
    assert again.user_attrs[ATTR_STAGE]["retrained_in"] == "sn-retrain"


def test_retraining_needs_a_supernet_study(tmp_path):
    with pytest.raises(SpecError, match=r"no \[supernet\] section"):
        retrain_front(spec(tmp_path), progress=False)


def test_cli_retrains_the_front_only_within_a_limit(tmp_path, capsys):
    db = tmp_path / "c.db"
    study = small_study_toml(
        "snc", bitops="60_000", epochs=2, storage=f"sqlite:///{db}",
        study_extra='sampler = "random"\nseed = 3\n',
    ) + "[supernet]\nepochs = 2\nprogress = false\n"  # fmt: skip
    path = tmp_path / "snc.toml"
    path.write_text(study.replace("trials = 5", "trials = 16"))
    assert main(["run", str(path), "--no-progress"]) == 0
    front = front_trials(bitnas.open_result(str(path)).study)
    assert len(front) >= 2
    capsys.readouterr()
    assert main(["retrain", str(path), "--layers", "1", "--limit", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "'snc-retrain'" in out and "enqueued 2 of its" in out
    stage2 = bitnas.open_result("snc-retrain", storage=f"sqlite:///{db}").study
    done = stage2.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert [t.params for t in done] == [t.params for t in front[:2]]  # the two cheapest
    assert stage2.user_attrs[ATTR_STAGE]["layers"] == 1
    assert main(["retrain", str(path), "--layers", "0"]) == 2
    assert "layers must be an integer >= 1" in capsys.readouterr().err


def test_rerun_retrains_what_the_grown_choice_adds_and_nothing_twice(tmp_path):
    sn = spec(tmp_path, supernet={"epochs": 2, "progress": False})
    sn = sn.replace(trials=8)
    bitnas.run(sn, progress=False)

    def retrained(study):
        done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        keys = [t.user_attrs["arch_key"] for t in done]
        assert len(keys) == len(set(keys)), "an architecture was re-trained twice"
        return set(keys)

    def chosen(layers):
        source = bitnas.open_result("sn", storage=sn.study.storage).study
        return {t.user_attrs["arch_key"] for t in front_trials(source, layers=layers)}

    one = retrain_front(sn, layers=1, progress=False)
    assert retrained(one.study) == chosen(1)
    two = retrain_front(sn, layers=2, progress=False)
    assert chosen(1) < chosen(2) and retrained(two.study) == chosen(2)
    assert two.study.user_attrs[ATTR_STAGE]["layers"] == 2
    again = retrain_front(sn, layers=1, progress=False)  # nothing left to do
    assert again.added.get("complete", 0) == 0 and retrained(again.study) == chosen(2)
    assert again.study.user_attrs[ATTR_STAGE]["layers"] == 2  # what the study holds
    bitnas.run(sn.replace(trials=16), progress=False)  # stage 1 grows: its layers change
    grown = retrain_front(sn, layers=2, progress=False)
    assert chosen(2) <= retrained(grown.study)
    with pytest.raises(SpecError, match=r"limit must be an integer >= 1.*-3"):
        retrain_front(sn, limit=-3, progress=False)
