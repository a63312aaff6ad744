"""The PostgreSQL server restarted while runs write to it: they wait, retry and go on, no
finished trial lost or recorded twice; a server that stays down ends a run with a clear error
after the bound (BITNAS_DB_RETRY_S), and the next run closes the trials it held."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitnas.errors import StorageError
from bitnas.search import open_storage
from bitnas.search.storage_retry import RETRY_ENV, retry_seconds
from tests.reliability.pg import PASSWORD, PgServer
from tests.reliability.shared_study import added, check_shared_study, table_study

pytestmark = pytest.mark.slow

#: `bitnas run` with each table lookup taking 0.1 s, so that trials are under way when the
#: server goes (a lookup alone takes microseconds); while the file HOLD names exists, lookups
#: wait, so that runs that start seconds apart all have their share of the study left.
SLOW_RUN = (
    "import os, sys, time\n"
    "from bitnas.evaluators.table import TableEvaluator\n"
    "lookup = TableEvaluator.evaluate\n"
    "def slow(self, *a, **k):\n"
    "    while os.path.exists(os.environ.get('HOLD', '')):\n"
    "        time.sleep(0.02)\n"
    "    time.sleep(0.1)\n"
    "    return lookup(self, *a, **k)\n"
    "TableEvaluator.evaluate = slow\n"
    "from bitnas.studies.cli import main\n"
    "sys.exit(main(['run', *sys.argv[1:], '--no-progress']))\n"
)


def slow_run(
    f: Path, *args: str, retry_s: str = "60", hold: Path | None = None, err: Path | None = None
) -> subprocess.Popen[str]:
    """``err``: a file for the run's stderr (read while it runs), else a pipe."""
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, str(f), *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if err is None else err.open("w"), text=True, cwd=f.parent,
        env={**os.environ, "PYTHONWARNINGS": "ignore", RETRY_ENV: retry_s,
             "HOLD": str(hold or "")},
    )  # fmt: skip


def trials_by_state(pg: PgServer) -> dict[str, int]:
    """Trials by state, and under "owners" how many runs asked trials."""
    import psycopg

    try:
        with psycopg.connect(pg.dsn(), connect_timeout=2) as con:
            rows = con.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall()
            owners = con.execute("SELECT count(DISTINCT value_json) FROM "
                                 "trial_user_attributes WHERE key = 'owner'").fetchone()  # fmt: skip
            return {**{str(state): int(n) for state, n in rows}, "owners": int(owners[0])}
    except psycopg.Error:  # tables not created yet
        return {}


def wait_for(pg: PgServer, n: int, procs: list[subprocess.Popen[str]], timeout: float = 120):
    """Until ``n`` trials are COMPLETE, one is RUNNING (a run is at a trial), and every run
    of ``procs`` has asked trials (one may start seconds after the other)."""
    deadline = time.monotonic() + timeout
    while True:
        by_state = trials_by_state(pg)
        if (by_state.get("COMPLETE", 0) >= n and by_state.get("RUNNING", 0) >= 1
                and by_state.get("owners", 0) >= len(procs)):  # fmt: skip
            return
        for p in procs:
            assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, f"fewer than {n} trials finished in {timeout} s"
        time.sleep(0.02)


def test_bound_setting_is_checked(monkeypatch):
    monkeypatch.setenv(RETRY_ENV, "2.5")
    assert retry_seconds() == 2.5
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setenv(RETRY_ENV, bad)
        with pytest.raises(StorageError, match=f"{RETRY_ENV} must be a number of seconds >= 0"):
            retry_seconds()


def test_a_server_never_reached_is_an_error_at_once(monkeypatch):
    monkeypatch.setenv(RETRY_ENV, "300")  # the bound is for a server that answered before
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=r"cannot open storage postgresql\+psycopg://u:\*\*\*@"):
        open_storage("postgresql+psycopg://u:pw@127.0.0.1:1/db")
    assert time.monotonic() - t0 < 15


def test_runs_ride_out_a_server_restart_and_a_server_gone_ends_a_run_clearly(pg, tmp_path):
    f = table_study(tmp_path, "restart", pg.url, trials=24)
    hold = tmp_path / "hold"
    hold.touch()
    errs = [tmp_path / "run0.err", tmp_path / "run1.err"]
    runs = [slow_run(f, hold=hold, err=e) for e in errs]
    try:
        # both runs at their first trial before any finishes: a run that started seconds later
        # would otherwise find the study almost done and may end before the server goes
        wait_for(pg, 0, runs)
    except BaseException:  # a held run never ends by itself: stop both by PID
        for p in runs:
            p.kill()
            p.communicate()
        raise
    finally:
        hold.unlink(missing_ok=True)
    wait_for(pg, 4, runs)
    t0 = time.monotonic()
    pg.stop()  # mid-study: both runs have trials under way
    time.sleep(3)
    # down until both runs met the outage: a run busy without the server for more than the
    # 3 s (a slow ask on a loaded machine) would otherwise never see it
    deadline = time.monotonic() + 60
    while not all("does not answer" in e.read_text() for e in errs):
        assert time.monotonic() < deadline, [e.read_text()[-2000:] for e in errs]
        time.sleep(0.1)
    t_down = time.monotonic() - t0
    pg.start()
    outs = [(p.communicate(timeout=240)[0], e.read_text()) for p, e in zip(runs, errs, strict=True)]
    t_after = time.monotonic() - t0
    for p, (out, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, err[-8000:]
        assert "does not answer" in err and "answers again" in err, (out[-2000:], err[-3000:])
    check_shared_study(pg.url, "restart", 24)
    assert sum(added(out) for out, _ in outs) == 24

    # the server goes for good: the run ends after the bound, saying what happened
    run = slow_run(f, "--trials", "40", retry_s="3")
    wait_for(pg, 26, [run])
    pg.stop()
    t1 = time.monotonic()
    out, err = run.communicate(timeout=120)
    t_gone = time.monotonic() - t1
    assert run.returncode == 2, err[-3000:]
    assert "(the bound: 3 s;" in err and "Traceback" not in err, err[-3000:]
    assert "the run stops" in err and "closes them (abandoned)" in err
    assert 3 <= t_gone < 60
    assert PASSWORD not in out + err and "bitnas:***@127.0.0.1" in err
    pg.start()
    held = trials_by_state(pg).get("RUNNING", 0)
    assert held >= 1, "the run that stopped held no trial"
    run = slow_run(f, "--trials", "40")  # the next run closes what the dead one held
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, err[-3000:]
    trials = check_shared_study(pg.url, "restart", 40)
    abandoned = [t for t in trials if str(t.user_attrs.get("error", "")).startswith("abandoned")]
    assert len(abandoned) == held
    print(f"\nrestart: 2 runs, 24 trials, server down {t_down:.1f} s, done {t_after:.1f} s after the stop; "
          f"gone for good: the run ended {t_gone:.1f} s after the stop (bound 3 s), "
          f"{len(abandoned)} trials it held closed by the next run")  # fmt: skip
