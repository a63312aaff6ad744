"""`bitnas dashboard`: optuna-dashboard serves a bitnas study with everything a review needs."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from bitnas.errors import SpecError
from bitnas.search import Problem, create_or_load_study, make_sampler, open_storage, optimize
from bitnas.spaces import Architecture, Budget, bitops
from bitnas.spaces.cost import COST_MODEL
from bitnas.studies.cli import main
from bitnas.studies.dashboard import resolve_target
from bitnas.studies.study_artifacts import refresh_study_artifacts, store_for
from tests.conftest import SpyEvaluator, small_space, small_study_toml

PNG = b"\x89PNG\r\n\x1a\n"


def write_study(db: Path, name: str = "review", trials: int = 8):
    """A study as `bitnas run` writes it (sampler, artifacts, Pareto plot), with a synthetic
    evaluator and a budget that rejects about three quarters of the space."""
    url = f"sqlite:///{db}"
    space = small_space()
    costs = sorted(bitops(a) for a in space.grid())
    budget = costs[len(costs) // 4]
    store = store_for(url)
    problem = Problem(space=space, evaluator=SpyEvaluator(), budget=Budget(budget), artifacts=store)
    study = create_or_load_study(open_storage(url), name, problem, make_sampler("tpe", 0), url)
    optimize(study, problem, trials, progress=False)
    assert store is not None
    refresh_study_artifacts(study, store, budget=budget)
    return study


def test_targets_resolve_to_a_storage_and_its_artifact_folder(tmp_path):
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    t = resolve_target(str(db))
    assert (t.storage_url, t.artifacts) == (f"sqlite:///{db}", tmp_path / "x.artifacts")
    t = resolve_target("postgresql://u@h/db", artifacts="/srv/art")
    assert (t.storage_url, t.artifacts) == ("postgresql://u@h/db", Path("/srv/art"))
    f = tmp_path / "s.toml"
    f.write_text(
        small_study_toml("s", bitops="60_000", epochs=1, storage="sqlite:///a/b.db",
                         study_extra='artifacts = "kept/here"\n')
    )  # fmt: skip
    assert resolve_target(str(f)) == resolve_target("sqlite:///a/b.db", artifacts="kept/here")
    assert resolve_target(str(f), storage="sqlite:///c.db").storage_url == "sqlite:///c.db"
    with pytest.raises(SpecError, match=r"needs a study file .* got 'nope.db' \(no such file\)"):
        resolve_target("nope.db")
    with pytest.raises(SpecError, match="--storage applies only with a study file"):
        resolve_target(str(db), storage="sqlite:///y.db")


def test_busy_port_and_missing_storage_are_clean_errors(tmp_path, capsys):
    db = tmp_path / "x.db"
    open_storage(f"sqlite:///{db}")  # an empty Optuna storage
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboard", str(db), "--port", str(port)]) == 2
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["dashboard", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert "no study storage at" in capsys.readouterr().err


def _start_dashboard(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bitnas", "dashboard", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"the dashboard printed no URL in 60 s: {seen}") from None
        seen.append(line)
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/dashboard", line)
        if m:
            return proc, m.group(1)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        assert r.status == 200, url
        data: bytes = r.read()
        return data


@pytest.mark.slow
def test_dashboard_shows_objectives_trials_attrs_artifacts_and_only_feasible_best(tmp_path):
    db = tmp_path / "review.db"
    write_study(db, "decoy", trials=2)  # the storage holds another study too
    study = write_study(db)
    proc, base = _start_dashboard(db)
    try:
        summaries = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
        assert sorted(s["study_name"] for s in summaries) == ["decoy", "review"]
        (sid,) = [s["study_id"] for s in summaries if s["study_name"] == "review"]
        d = json.loads(_get(f"{base}/api/studies/{sid}"))
        assert d["name"] == "review"
        assert d["objective_names"] == ["val_accuracy", "bitops"]
        assert d["directions"] == ["maximize", "minimize"]

        trials = study.get_trials()
        shown = {t["number"]: t for t in d["trials"]}
        assert sorted(shown) == [t.number for t in trials]
        rejected = 0
        for t in trials:
            s = shown[t.number]
            assert s["state"] == t.state.name.capitalize()
            attrs = {a["key"]: a["value"] for a in s["user_attrs"]}
            assert attrs["summary"] == t.user_attrs["summary"]
            assert attrs["cost_model"] == COST_MODEL
            assert int(attrs["timesteps"]) == t.user_attrs["timesteps"]
            assert int(attrs["depth"]) == t.user_attrs["depth"]
            for k in ("widths", "wbits", "abits", "cost"):
                assert json.loads(attrs[k]) == t.user_attrs[k], k
            if t.state.name == "COMPLETE":
                assert json.loads(attrs["densities"]) == t.user_attrs["densities"]
                assert s["values"] == t.values
            (excess,) = s["constraints"]  # the record the dashboard's feasibility reads
            if "rejected" in t.user_attrs:
                rejected += 1
                assert s["state"] == "Pruned" and excess > 0 and attrs["feasible"] == "False"
            else:
                assert excess <= 0 and attrs["feasible"] == "True"
            # each trial's architecture, downloadable
            (art,) = s["artifacts"]
            assert art["filename"] == f"architecture-{t.number}.json"
            if t.number in (0, 1):
                raw = _get(f"{base}/artifacts/{sid}/{s['trial_id']}/{art['artifact_id']}")
                assert Architecture.from_dict(json.loads(raw)) == Architecture.from_json(
                    t.user_attrs["architecture"]
                )
        assert rejected >= 1, "the study must hold over-budget trials"

        best = d["best_trials"]
        assert best
        assert all(c <= 0 for b in best for c in b["constraints"])
        assert {b["number"] for b in best} <= {
            t.number for t in trials if "rejected" not in t.user_attrs
        }

        (plot,) = d["artifacts"]
        assert plot["filename"] == "pareto.png" and plot["mimetype"] == "image/png"
        assert _get(f"{base}/artifacts/{sid}/{plot['artifact_id']}").startswith(PNG)
        assert b"<html" in _get(f"{base}/dashboard/studies/{sid}").lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode is not None


@pytest.mark.slow
def test_dashboard_best_trials_are_the_front_bitnas_pareto_prints(tmp_path, capsys):
    """A study with repeats and over-budget trials: the dashboard's Best Trials (its Pareto
    front) are exactly the trials `bitnas pareto` prints, each architecture once, and each
    over-budget trial's page says it is infeasible in its note."""
    db = tmp_path / "front.db"
    url = f"sqlite:///{db}"
    space = small_space(depth=(1, 2), width=(16,), wbits=(2, 8), abits=(1, 4), timesteps=(1,))
    costs = sorted(bitops(a) for a in space.grid())
    problem = Problem(space=space, evaluator=SpyEvaluator(), budget=Budget(costs[len(costs) // 2]))
    study = create_or_load_study(open_storage(url), "front", problem, make_sampler("nsga2", 0), url)
    optimize(study, problem, 15, progress=False)
    trials = study.get_trials()
    assert any("duplicate_of" in t.user_attrs for t in trials), "the study must hold repeats"
    assert any("rejected" in t.user_attrs for t in trials), "and over-budget trials"

    assert main(["pareto", "front", "--storage", url]) == 0
    printed = {
        int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+0\.\d+", capsys.readouterr().out, re.M)
    }
    assert printed
    proc, base = _start_dashboard(db)
    try:
        (sid,) = [s["study_id"] for s in json.loads(_get(f"{base}/api/studies"))["study_summaries"]]
        d = json.loads(_get(f"{base}/api/studies/{sid}"))
        best = {b["number"] for b in d["best_trials"]}
        assert best == printed
        complete = [t for t in d["trials"] if t["state"] == "Complete"]
        keys = [
            next(a["value"] for a in t["user_attrs"] if a["key"] == "arch_key") for t in complete
        ]
        assert len(keys) == len(set(keys))  # no architecture twice among the results
        for t in d["trials"]:
            attrs = {a["key"] for a in t["user_attrs"]}
            if "rejected" in attrs:
                assert t["note"]["body"].startswith("**Infeasible** (over budget:"), t["note"]
            else:
                assert t["note"]["body"] == ""
    finally:
        proc.terminate()
        proc.wait(timeout=30)
