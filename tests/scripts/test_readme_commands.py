"""README.md's "Using it" block, line by line as printed, in one scratch folder and in its
order: the cheap runner of ``scripts/regenerate_docs.py --check`` (its study fixtures: 1 epoch,
8 trials; ``bitnas dashboard`` started, its URL read, stopped by its PID). A documented command
that no longer runs fails here. The one file the block names but the repository lacks,
``digits_v2.toml`` ("same data, a new budget"), is written as the README describes it: the
study file with another name and budget (and its storage, where `--warm-start` looks)."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest
from test_regenerate_docs import rd

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^## Using it\n\n```bash\n(?P<body>.*?)^```$", re.S | re.M)


def readme_commands() -> list[str]:
    (m,) = BLOCK.finditer((ROOT / "README.md").read_text())
    return [shlex.join(shlex.split(ln, comments=True)) for ln in m["body"].splitlines()]


def test_the_block_is_found_and_every_line_is_a_bitnas_command():
    cmds = readme_commands()
    assert len(cmds) >= 12
    assert all(c.startswith("bitnas ") for c in cmds), cmds


@pytest.mark.slow
def test_every_command_of_using_it_runs_as_printed(tmp_path):
    t0 = time.perf_counter()
    runner = rd.Runner(tmp_path, check=True)
    v1 = (tmp_path / "studies" / "digits.toml").read_text()  # the fixture: 1 epoch, 8 trials
    v2 = v1.replace('name = "digits"', 'name = "digits_v2"', 1)
    v2 = v2.replace("bitops = 150_000 ", "bitops = 100_000 ")
    assert 'name = "digits_v2"' in v2 and "bitops = 100_000 " in v2
    (tmp_path / "digits_v2.toml").write_text(v2)
    failed = []
    for cmd in readme_commands():
        kind = "server" if cmd.startswith("bitnas dashboard ") else "shell"
        r = runner.run(rd.Unit(kind, cmd), {})
        if r.status != 0:
            failed.append(f"`{cmd}` exited {r.status}:\n    " + "\n    ".join(r.lines[-5:]))
    assert not failed, "\n".join(failed)
    print(f"{len(readme_commands())} README commands in {time.perf_counter() - t0:.1f} s")


def python_blocks(rel: str) -> list[str]:
    text = (ROOT / rel).read_text()
    found = [m[1] for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)]
    return [b for b in found if not b.startswith(">>> ")]  # not the output blocks


@pytest.mark.slow
def test_the_python_examples_of_readme_and_export_run_as_printed(tmp_path, monkeypatch):
    """README.md's `bitnas.run` example (on the fixture), then docs/export.md's reading-back
    blocks, in one namespace and in order, on what `bitnas export` wrote."""
    runner = rd.Runner(tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    (run_example, *_) = python_blocks("README.md")
    assert 'bitnas.run("studies/digits.toml", trials=20)' in run_example
    ns: dict[str, object] = {"__name__": "__doc__"}
    exec(compile(run_example, "README.md", "exec"), ns)
    export = "bitnas export studies/digits.toml --parquet runs/digits.parquet --csv runs/digits.csv"
    assert export in (ROOT / "docs" / "export.md").read_text()
    assert runner.run(rd.Unit("shell", export), {}).status == 0
    blocks = python_blocks("docs/export.md")
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/export.md, block {i + 1}", "exec"), ns)
    front, df = ns["front"], ns["df"]
    assert len(front) >= 1 and len(df) >= 20  # type: ignore[arg-type]


def test_the_known_cost_example_of_readme_runs_as_printed():
    """README's plain-Optuna known-cost block: 20 trials, none over the budget, and the
    model's interval for an untried architecture."""
    blocks = [b for b in python_blocks("README.md") if "KnownCostSampler(" in b]
    assert len(blocks) == 1
    ns: dict[str, object] = {"__name__": "__doc__"}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    study = ns["study"]
    costs = [t.values[1] for t in study.trials]  # type: ignore[attr-defined]
    assert len(costs) == 20 and max(costs) <= 512
    assert ns["low"][0] <= ns["median"][0] <= ns["high"][0]  # type: ignore[index]
