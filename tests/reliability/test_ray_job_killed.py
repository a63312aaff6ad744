"""The driver of a submitted Ray job killed mid-study: README.md's recipe (`ray job submit
--working-dir . -- bitnas run STUDY --backend ray --storage sqlite:////abs.db`) against a head
with token authentication, the job's driver killed with SIGKILL by its PID while it holds
RUNNING trials. Ray reports the job FAILED; the same job submitted again resumes the study:
it closes the trials the dead driver held (FAIL, "abandoned"), trains their architectures
again and stops at the study's target, with no architecture trained twice."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.search import counts, open_storage
from tests.conftest import small_study_toml
from tests.reliability.raycluster import RayCluster, alive, below, procs
from tests.reliability.shared_study import trained

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")
TARGET = 6
#: Epochs of a trial: 2-4 s on a Ray worker (11-14 s on a fresh one, its start-up included),
#: so that trials are RUNNING for a while, and the whole study takes well under a minute.
EPOCHS = 60


def study_file(tmp_path: Path) -> Path:
    """32 small MLPs on digits (every one within the budget), trained EPOCHS epochs, two at
    a time on the head's 2 CPUs."""
    text = small_study_toml("job", bitops="1e12", epochs=EPOCHS)
    text = text.replace("trials = 5", f"trials = {TARGET}")
    text += "[ray]\nmax_concurrent = 2\ncpus_per_trial = 1\n"
    f = tmp_path / "job.toml"
    f.write_text(text)
    return f


def submit(cluster: RayCluster, study: Path, db: Path) -> list[str]:
    """README.md's recipe: `ray job submit ... --working-dir . -- bitnas run ...`."""
    return [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard,
            "--working-dir", ".", "--", "bitnas", "run", str(study), "--backend", "ray",
            "--storage", f"sqlite:///{db}", "--no-progress"]  # fmt: skip


def start_job(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ray job submit` in the background, its output in ``log``, once the job is submitted.
    A head whose dashboard answers may not have its agent yet ("No available agent to submit
    job, please try again later": nothing submitted): that is tried again."""
    deadline = time.monotonic() + 120
    while True:
        with log.open("w") as out:
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        while p.poll() is None and "submitted successfully" not in log.read_text():
            time.sleep(0.2)
        if p.poll() is None or "No available agent" not in log.read_text():
            return p
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(1)


def trials_of(db: Path) -> dict[int, tuple[str, dict[str, str]]]:
    """Trial number -> (state, user attributes) of the study's trials, read from the SQLite
    file itself (the test opens no Optuna storage that a run could wait on)."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute(
            "SELECT t.number, t.state, a.key, a.value_json FROM trials t"
            " LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id"
        ).fetchall()
    except sqlite3.OperationalError:  # no tables yet (the driver is creating the study)
        return {}
    finally:
        con.close()
    out: dict[int, tuple[str, dict[str, str]]] = {}
    for number, state, key, value in rows:
        attrs = out.setdefault(number, (state, {}))[1]
        if key is not None:
            attrs[key] = json.loads(value)
    return out


def running(db: Path) -> dict[int, dict[str, str]]:
    """Trial number -> user attributes of the study's RUNNING trials."""
    return {n: a for n, (state, a) in trials_of(db).items() if state == "RUNNING"}


def complete(db: Path) -> int:
    return sum(state == "COMPLETE" for state, _ in trials_of(db).values())


def wait_until(what: str, check: Callable[[], T], timeout: float = 180, poll: float = 0.2) -> T:
    """``check()`` once it is true, asked every ``poll`` s; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(poll)


def job_status(cluster: RayCluster, job: str) -> str:
    """The job's status as `ray job status` reports it (SUCCEEDED, FAILED, STOPPED, ...)."""
    p = subprocess.run(
        [str(BIN / "ray"), "job", "status", job, "--address", cluster.dashboard],
        env=cluster.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = p.stdout + p.stderr
    said = {"failed": "FAILED", "was stopped": "STOPPED", "succeeded": "SUCCEEDED"}
    for words, status in said.items():
        if f"Job '{job}' {words}" in text:
            return status
    m = re.search(r"Status for job '[^']+': (\w+)", text)
    return m.group(1) if m else ""


def test_a_killed_job_driver_s_trials_are_closed_when_the_job_is_submitted_again(
    tmp_path, monkeypatch
):
    # the head's processes, the job's driver among them, find `bitnas` and `ray` on PATH
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    study, db = study_file(tmp_path), tmp_path / "job.db"
    t0 = time.monotonic()
    cluster = RayCluster(tmp_path, cpus=2, dashboard=True)
    try:
        t_head = time.monotonic() - t0
        cmd = submit(cluster, study, db)
        log1, log2 = tmp_path / "submit-1.log", tmp_path / "submit-2.log"
        first = start_job(cmd, cluster.env, log1)

        def two_held() -> dict[int, dict[str, str]]:
            assert first.poll() is None, log1.read_text()[-4000:]
            if not complete(db):
                return {}
            held = {n: a for n, a in running(db).items() if "arch_key" in a and "owner" in a}
            return held if len(held) >= 2 else {}

        # the driver has finished a trial and holds two more, each with its architecture
        # recorded (while it holds max_concurrent trials, it asks for none)
        held = wait_until("the job's driver finished 1 trial and runs 2", two_held)
        t_held = time.monotonic() - t0
        owners = {a["owner"] for a in held.values()}
        assert len(owners) == 1, owners
        pid = int(owners.pop().split(":")[1])
        # the owner is the job's driver: a process under the head's own `ray start` (the
        # job supervisor's child), running this study's `bitnas run`
        assert pid in below(cluster.nodes[0].pid, procs()), "the owner is not the job's driver"
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"run" in cmdline and str(study).encode() in cmdline, cmdline
        job = re.findall(r"raysubmit_\w+", log1.read_text())[0]
        os.kill(pid, signal.SIGKILL)
        wait_until("the killed driver is gone", lambda: not alive(pid), timeout=60)
        t_kill = time.monotonic() - t0

        # Ray reports the job failed; `ray job submit` (it follows the job) says so
        assert first.wait(timeout=180) != 0, log1.read_text()[-4000:]

        def ended() -> str:
            status = job_status(cluster, job)
            return status if status in ("FAILED", "STOPPED") else ""

        status = wait_until("Ray reports the job FAILED or STOPPED", ended)
        # the dead driver closed nothing: the trials it held are RUNNING still
        left, before = running(db), complete(db)
        assert set(held) <= set(left), (held, left)
        redo = sum("arch_key" in a for a in left.values())  # to train again

        # the same job again resumes the study
        again = start_job(cmd, cluster.env, log2)
        code = again.wait(timeout=300)
        t_all = time.monotonic() - t0
        out2 = log2.read_text()[-6000:]
        assert code == 0, out2
        assert "succeeded" in out2 and f"now {TARGET} finished trials" in out2, out2
        # it resumed: what the dead driver finished stays, the rest is added
        for said in (f"added {TARGET - before} finished trials",
                     f"{redo} of them retrying a failed trial",
                     f"{len(left)} closed (left running by a dead earlier run)"):  # fmt: skip
            assert said in out2, out2
    finally:
        cluster.stop()

    s = optuna.load_study(study_name="job", storage=open_storage(f"sqlite:///{db}"))
    trials = s.get_trials()
    c = counts(trials)
    assert c["finished"] == TARGET and c["running"] == 0 and c["failed"] == 0, c
    assert [t.number for t in trials] == list(range(len(trials))), "a trial was lost"
    keys = [t.user_attrs["arch_key"] for t in trained(trials)]
    assert len(keys) == len(set(keys)) == TARGET, "an architecture was trained twice"
    done = {t.user_attrs["arch_key"] for t in trials if t.state == TrialState.COMPLETE}
    # what the dead driver held (and, if it had asked one more meanwhile, that one too) is
    # closed FAIL as abandoned by its PID, and its architecture trained again
    abandoned = {t.number: t for t in trials
                 if str(t.user_attrs.get("error", "")).startswith("abandoned")}  # fmt: skip
    assert set(held) <= set(abandoned) and set(left) == set(abandoned), (held, left, abandoned)
    for n, t in abandoned.items():
        assert t.state == TrialState.FAIL and f"(pid {pid})" in t.user_attrs["error"]
        if "arch_key" not in t.user_attrs:  # asked, not yet recorded: nothing to train again
            continue
        assert t.user_attrs["arch_key"] in done, f"#{n}'s architecture was not trained again"
        retry = [r for r in trials if r.user_attrs.get("retry_of") == n]
        assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE, n
        assert retry[0].user_attrs["arch_key"] == t.user_attrs["arch_key"]
    print(f"\njob driver killed: head up in {t_head:.1f} s; the driver (pid {pid}) had "
          f"{before} trials finished and held {len(held)} at {t_held:.1f} s, killed, gone by "
          f"{t_kill:.1f} s, job {status}; the same job again closed {len(abandoned)} "
          f"abandoned trials, retrained them, {TARGET} finished at {t_all:.1f} s, "
          f"{len(trials)} trials stored")  # fmt: skip
