"""Crash and resume: ``kill -9`` of ``bitnas run`` mid-study, then the same command again —
every trial finished before the kill is still there, the trial left RUNNING is closed FAIL and
its architecture re-run, the study reaches its target with nothing lost or trained twice.
Ctrl-C closes the running trial and says how to resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import default_sigint
from tests.studies.test_cli import STUDY, bitnas

ROOT = Path(__file__).resolve().parents[2]


def states(db: Path) -> list[str]:
    """Trial states, with the last one's state only once it is training (has its owner)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            rows = list(con.execute(
                "select t.state, (select count(*) from trial_user_attributes a where "
                "a.trial_id = t.trial_id and a.key = 'summary') from trials t"
            ))  # fmt: skip
        except sqlite3.OperationalError:
            return []
    return [s if s != "RUNNING" or owned else "ASKED" for s, owned in rows]


def start(f: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "bitnas", "run", str(f), "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            preexec_fn=default_sigint)  # fmt: skip


def wait_until_training(proc: subprocess.Popen[bytes], db: Path, complete: int) -> None:
    deadline = time.time() + 120
    while not (states(db).count("COMPLETE") >= complete and states(db)[-1:] == ["RUNNING"]):
        assert time.time() < deadline and proc.poll() is None, states(db)
        time.sleep(0.05)


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("capped", [False, True], ids=["in-process", "capped-trials"])
def test_kill_9_mid_study_then_the_same_command_resumes(tmp_path, capped):
    f = tmp_path / "k.toml"
    db = tmp_path / "k.db"
    text = (
        STUDY.format(db=db).replace("trials = 5", "trials = 6").replace("epochs = 3", "epochs = 15")
    )
    if capped:  # trials in child processes: the kill must not leave them training
        text += "[limits]\ntrial_seconds = 120\ntrial_memory_mb = 4096\n"
    f.write_text(text)
    proc = start(f)
    wait_until_training(proc, db, complete=2)
    helpers = descendants(proc.pid)
    assert bool(helpers) == capped  # the fork server and the trial's process
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = states(db)
    assert before.count("RUNNING") == 1  # one trial killed mid-training
    finished_before = before.count("COMPLETE")
    deadline = time.time() + 10
    while any(alive(p) for p in helpers):  # a killed run's trial processes die with it
        assert time.time() < deadline, [p for p in helpers if alive(p)]
        time.sleep(0.1)
    again = bitnas("run", f, "--no-progress")
    assert "now 6 finished trials" in again.stdout
    # the resumed run's summary names the trial it closed and the retry among those it trained
    assert f"added {6 - finished_before} finished trials" in again.stdout
    assert "1 of them retrying a failed trial, 1 closed (left running by a dead earlier run)" in (
        again.stdout
    )
    assert "re-run retries" not in again.stdout  # the closed trial was retried: none pending
    out = tmp_path / "k.parquet"
    bitnas("export", f, "--parquet", out)
    rows = pq.read_table(out).to_pylist()
    assert [r["number"] for r in rows] == list(range(len(rows)))  # nothing lost, no gaps
    assert [r["state"] for r in rows[: len(before)]].count("COMPLETE") == finished_before
    assert not [r for r in rows if r["state"] == "RUNNING"]
    abandoned = [r for r in rows if r["error"] and r["error"].startswith("abandoned")]
    assert len(abandoned) == 1
    trained = [r for r in rows if r["state"] == "COMPLETE" and r["duplicate_of"] is None]
    assert len(trained) == 6
    archs = [r["architecture"] for r in trained]
    assert len(set(archs)) == 6, "no architecture trained twice"
    # the killed trial's architecture is the first one the resumed run trains
    (retry,) = [
        r for r in rows if r["number"] > abandoned[0]["number"] and r["state"] == "COMPLETE"
    ][:1]
    assert retry["architecture"] == abandoned[0]["architecture"]
    print(f"killed 1 trial mid-training with {finished_before} complete; resumed: "
          f"{len(rows)} trials, 6 trained, {len(abandoned)} closed and re-run, 0 lost")  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_closes_the_running_trial_and_says_how_to_resume(tmp_path):
    f = tmp_path / "c.toml"
    db = tmp_path / "c.db"
    f.write_text(STUDY.format(db=db).replace("epochs = 3", "epochs = 15"))
    proc = start(f)
    wait_until_training(proc, db, complete=1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out.decode(), err.decode(), states(db))
    assert "Run the same command again to continue the study." in err.decode()
    assert "Traceback" not in err.decode()
    after = states(db)
    assert "RUNNING" not in after and after[-1] == "FAIL"
    again = bitnas("run", f, "--no-progress")
    assert "now 5 finished trials" in again.stdout
