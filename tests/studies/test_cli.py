"""The command line as a user runs it: run, re-run, pareto, export, cost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import small_study_toml

ROOT = Path(__file__).resolve().parents[2]

STUDY = small_study_toml(
    "cli", bitops="60_000", epochs=3, storage="sqlite:///{db}",
    study_extra='sampler = "tpe"\nseed = 1\n',
)  # fmt: skip


def bitnas(*args, cwd=None, check=True):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run(
        [sys.executable, "-m", "bitnas", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"bitnas {args} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def front_rows(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----"))
    return [line for line in lines[start + 1 :] if line.strip()]


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "bitnas"
    p = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for cmd in ("run", "pareto", "export", "cost"):
        assert cmd in p.stdout


@pytest.mark.slow
def test_run_rerun_pareto_export(tmp_path):
    f = tmp_path / "cli.toml"
    db = tmp_path / "cli.db"
    f.write_text(STUDY.format(db=db))
    first = bitnas("run", f, "--no-progress")
    assert "added 5 finished trials" in first.stdout
    rows = front_rows(first.stdout)
    assert rows
    for row in rows:
        bitops = int(row.split()[3].replace(",", ""))
        assert bitops <= 60_000
    # re-running the same command continues the same study: nothing to add
    again = bitnas("run", f, "--no-progress")
    assert "added 0 finished trials" in again.stdout and "now 5 finished trials" in again.stdout
    # pareto from the file and from the study name + storage reproduce the table
    by_file = bitnas("pareto", f)
    by_name = bitnas("pareto", "cli", "--storage", f"sqlite:///{db}")
    assert front_rows(by_file.stdout) == rows == front_rows(by_name.stdout)
    # a larger target adds exactly the missing trials
    more = bitnas("run", f, "--trials", 7, "--no-progress")
    assert "added 2 finished trials" in more.stdout
    out = tmp_path / "t.parquet"
    exp = bitnas("export", f, "--parquet", out, "--csv", tmp_path / "t.csv")
    table = pq.read_table(out)
    assert re.search(rf"wrote {table.num_rows} trials", exp.stdout)
    trained = [r for r in table.to_pylist() if r["duplicate_of"] is None and not r["rejected"]]
    assert [r["state"] for r in trained] == ["COMPLETE"] * 7
    assert (tmp_path / "t.csv").read_text().splitlines()[0].startswith("number,state")


def test_cost_reports_size_extremes_and_share():
    p = bitnas("cost", ROOT / "studies" / "digits.toml")
    assert "29,484 architectures" in p.stdout
    assert re.search(r"cheapest:\s+16,704 BitOps\s+mlp 64-16\(w2a1\)-10\(w2\) T=1 direct", p.stdout)
    assert "dearest:" in p.stdout
    assert "42.4% of the space fits (exact, 12,511 of 29,484)" in p.stdout


def test_errors_exit_2_with_a_message_not_a_traceback(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(STUDY.format(db=tmp_path / "x.db").replace("wbits = [2, 4]", "wbits = [2, 3.5]"))
    p = bitnas("run", f, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("bitnas: error: `wbits` must be an integer bit width")
    assert f"(in [space] of {f})" in p.stderr
    p = bitnas("run", tmp_path / "cli.toml", "--sampler", "bayes", check=False)
    assert p.returncode == 2 and "no study file at" in p.stderr
    f.write_text(STUDY.format(db=tmp_path / "x.db"))
    p = bitnas("run", f, "--sampler", "bayes", check=False)
    assert p.returncode == 2 and "`sampler` must be one of" in p.stderr
    p = bitnas("pareto", "nothing", "--storage", f"sqlite:///{tmp_path}/none.db", check=False)
    assert p.returncode == 2 and "no study storage at" in p.stderr
    p = bitnas("export", f, check=False)
    assert p.returncode == 2 and "needs --parquet OUT" in p.stderr
    bitnas("run", f, "--trials", 1, "--no-progress")
    p = bitnas("export", f, "--csv", tmp_path, check=False)  # a folder, not a file
    assert p.returncode == 2 and f"cannot write --csv {tmp_path}" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_tight_budget_study_trains_nothing_over_budget(tmp_path):
    f = tmp_path / "tight.toml"
    db = tmp_path / "tight.db"
    f.write_text(
        STUDY.format(db=db)
        .replace("bitops = 60_000", "bitops = 20_000")
        .replace("trials = 5", "trials = 4")
    )
    bitnas("run", f, "--no-progress")
    out = tmp_path / "t.parquet"
    bitnas("export", f, "--parquet", out)
    rows = pq.read_table(out).to_pylist()
    trained = [r for r in rows if r["rejected"] is None and r["duplicate_of"] is None]
    assert len(trained) == 4 and all(r["dense_bitops"] <= 20_000 for r in trained)
    assert all(r["state"] == "COMPLETE" and r["test_accuracy"] is not None for r in trained)
    rejected = [r for r in rows if r["rejected"] is not None]
    assert rejected, "a 20k budget rejects most of this space"
    assert all(r["dense_bitops"] > 20_000 and r["state"] == "PRUNED" for r in rejected)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 60 trainings in a subprocess: 1-4 minutes, more beside other jobs
def test_default_digits_study_end_to_end(tmp_path):
    """README's main command on the shipped study: a feasible, non-dominated Pareto table."""
    from bitnas.search import pareto_mask

    db = f"sqlite:///{tmp_path}/digits.db"
    p = bitnas("run", ROOT / "studies" / "digits.toml", "--storage", db, "--no-progress")
    assert "added 60 finished trials" in p.stdout
    rows = front_rows(p.stdout)
    points = [(float(r.split()[1]), int(r.split()[3].replace(",", ""))) for r in rows]
    assert len(points) >= 3
    assert all(b <= 150_000 for _, b in points)
    assert pareto_mask(points, ["maximize", "minimize"]).all()
    assert max(a for a, _ in points) > 0.9  # digits is learnable far above chance (0.1)
    assert front_rows(bitnas("pareto", "digits", "--storage", db).stdout) == rows


def test_shipped_study_files_all_load_and_cost():
    for f in sorted((ROOT / "studies").glob("*.toml")):
        p = bitnas("cost", f)
        assert "architectures" in p.stdout and "cheapest:" in p.stdout, f


def test_resnet18_costing_study_and_refusal_to_train(tmp_path):
    f = ROOT / "studies" / "resnet18_imagenet.toml"
    p = bitnas("cost", f)
    # W2/A1 ResNet-18 with 8-bit first (8-bit input) and last layers (1-bit activations in)
    assert re.search(r"cheapest:\s+10,948,083,712 BitOps\s+resnet 3x224x224-64k7\(w8a1\)", p.stdout)
    p = bitnas("run", f, "--storage", f"sqlite:///{tmp_path}/r.db", check=False)
    assert p.returncode == 2 and "the shape dataset has no samples" in p.stderr


@pytest.mark.slow
def test_run_with_stopper_and_warm_start_flags(tmp_path):
    import tomllib

    from bitnas.studies.spec import StudySpec
    from tests.conftest import write_curve_table
    from tests.search.test_stopping import two_level_curve

    text = (
        small_study_toml("one", bitops="1e9", epochs=1, storage=f"sqlite:///{tmp_path}/w.db")
        + '[table]\npath = "t.parquet"\n'
    )
    (tmp_path / "one.toml").write_text(text)
    (tmp_path / "two.toml").write_text(text.replace('name = "one"', 'name = "two"'))
    space = StudySpec.from_dict(tomllib.loads(text)).space
    write_curve_table(tmp_path / "t.parquet", space, two_level_curve)
    one = bitnas(
        "run", "one.toml", "--trials", 10, "--stopper", "pareto", "--no-progress", cwd=tmp_path
    )
    assert "added 10 finished trials" in one.stdout
    two = bitnas("run", "two.toml", "--warm-start", "one", "--no-progress", cwd=tmp_path)
    m = re.search(r"warm start from 'one': enqueued (\d+) of its (\d+) front trials", two.stdout)
    assert m and int(m.group(1)) == int(m.group(2)) > 0
    bad = bitnas("run", "two.toml", "--stopper", "hyperband", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "`stopper` must be one of ['none', 'pareto']" in bad.stderr
