"""One study on a real PostgreSQL server (started by the test, 127.0.0.1 only): four `bitnas
run` processes on the local backend at once, then two Ray drivers at once, reach exactly the
study's target with every architecture trained once; optuna-dashboard reads the study; the
server's password shows up nowhere bitnas prints, raises or stores."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

import optuna
import pytest

from bitnas.search import front_trials
from bitnas.search.storage import check_url, open_storage, redact
from bitnas.studies.dashboard import DashboardTarget, make_dashboard_server
from tests.reliability.pg import PASSWORD, PgServer
from tests.reliability.shared_study import (
    added,
    check_shared_study,
    finish,
    start,
    table_study,
    trained,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_database_urls_are_accepted_and_shown_without_their_password():
    for url in ("postgresql://u:pw@127.0.0.1:5432/db", "postgresql+psycopg://u:pw@h/db"):
        check_url(url)
        assert "pw" not in redact(url).split("@")[0].split(":", 2)[-1]
        assert redact(url).endswith("u:***@" + url.split("@")[1])


def all_rows(pg: PgServer) -> str:
    """Every row of every table of the study database, as text."""
    import psycopg

    with psycopg.connect(pg.dsn()) as con:
        tables = [r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]  # fmt: skip
        assert "trials" in tables
        return "\n".join(str(row) for t in tables for row in con.execute(f"SELECT * FROM {t}"))


def dashboard_reads(url: str, name: str) -> dict[str, object]:
    """The study as optuna-dashboard's HTTP API serves it (in a thread of this process)."""
    server = make_dashboard_server(DashboardTarget(url, None), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/api/studies", timeout=60) as r:
            summaries = json.loads(r.read())["study_summaries"]
        (sid,) = [s["study_id"] for s in summaries if s["study_name"] == name]
        with urllib.request.urlopen(f"{base}/api/studies/{sid}", timeout=60) as r:
            study: dict[str, object] = json.loads(r.read())
        return study
    finally:
        server.shutdown()
        server.server_close()


def test_four_local_runs_then_two_ray_drivers_share_one_postgres_study(pg, tmp_path, ray_head):
    t0 = time.monotonic()
    f = table_study(tmp_path, "shared", pg.url, trials=16)
    runs = [start(f) for _ in range(4)]
    outs = finish(runs)
    t_local = time.monotonic() - t0
    trials = check_shared_study(pg.url, "shared", 16)
    assert sum(added(out) for out, _ in outs) == 16, [o[-300:] for o, _ in outs]
    owners = {t.user_attrs["owner"].split(":")[1] for t in trained(trials)}
    assert len(owners) >= 2, "the four runs did not share the work"

    # two Ray drivers on the same study, on one cluster, raising its target to 28
    t1 = time.monotonic()
    drivers = [
        start(f, "--trials", "28", "--backend", "ray", "--address", ray_head.address,
              env=ray_head.env)
        for _ in range(2)
    ]  # fmt: skip
    outs += finish(drivers, timeout=300)
    t_ray = time.monotonic() - t1
    assert sum(added(out) for out, _ in outs[4:]) == 12
    trials = check_shared_study(pg.url, "shared", 28)
    ray_trained = [t for t in trained(trials) if t.user_attrs.get("backend") == "ray"]
    assert len(ray_trained) == 12
    # both drivers share the work unless one started after the other had done it all (a
    # start-up skew of seconds on a loaded machine): then the second adds nothing
    drivers_that_trained = len({t.user_attrs["owner"] for t in ray_trained})

    shown = dashboard_reads(pg.url, "shared")
    assert shown["objective_names"] == ["val_accuracy", "bitops"]
    assert len(shown["trials"]) == len(trials)  # type: ignore[arg-type]
    best = sorted(t["number"] for t in shown["best_trials"])  # type: ignore[attr-defined]
    study = optuna.load_study(study_name="shared", storage=open_storage(pg.url))
    assert best == sorted(t.number for t in front_trials(study))

    # the password: not in any output, not in the database (spec, attributes), not in the
    # export, the report or the artifacts (runs/ in the study file's folder)
    exported = subprocess.run(
        [sys.executable, "-m", "bitnas", "export", str(f), "--csv", str(tmp_path / "s.csv")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    said = "".join(out + err for out, err in outs) + exported.stdout + exported.stderr
    assert "pg.url" not in said and PASSWORD not in said
    assert "bitnas:***@127.0.0.1" in said
    assert PASSWORD not in (tmp_path / "s.csv").read_text()
    from bitnas.studies.reporting import report

    report(f, out=tmp_path / "report")
    written = [p for p in (tmp_path / "report").rglob("*") if p.is_file()]
    assert any(p.suffix == ".md" for p in written)
    assert all(PASSWORD.encode() not in p.read_bytes() for p in written)
    artifacts = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert artifacts and all(PASSWORD.encode() not in p.read_bytes() for p in artifacts)
    assert PASSWORD not in all_rows(pg)
    print(f"\n4 local runs: {t_local:.1f} s; 2 Ray drivers: {t_ray:.1f} s "
          f"({drivers_that_trained} trained); {len(trials)} trials stored for 28 finished")  # fmt: skip
