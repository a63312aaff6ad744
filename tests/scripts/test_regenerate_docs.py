"""scripts/regenerate_docs.py: the outputs README.md and docs/ show are what the documented
commands print (their shape, see ``shape``), and a stale block is caught."""

from __future__ import annotations

import importlib.util
import re
import socket
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    name = "regenerate_docs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


rd = _load()

FRONT = """feasible Pareto front (budget 150,000 BitOps): {n} points
trial  val_accuracy  test_acc   bitops  event_bitops  T  architecture
-----  ------------  --------  -------  ------------  -  ------------------------------------------
"""
ROW = "   {i:>2}        0.9{i:03d}    0.8722   17,024         5,036  1  mlp 64-16(w2a1)-{w}(w4) T=1 direct"


def front(n: int, head: str = FRONT) -> list[str]:
    rows = [ROW.format(i=i, w="10" if i % 2 else "16(w2a1)-10") for i in range(n)]
    return (head.format(n=n) + "\n".join(rows)).splitlines()


def test_shape_ignores_data_and_keeps_what_the_program_prints():
    shape = rd.shape
    assert shape(front(5)) == shape(front(9))  # rows are data
    renamed = FRONT.replace("test_acc", "test_accuracy")
    assert shape(front(5, renamed)) != shape(front(5))  # a column renamed
    empty = "feasible Pareto front (budget 150,000 BitOps): empty (no feasible COMPLETE trial yet)"
    assert shape(front(5)) != shape([empty])  # no front where one was shown
    counts = "study 'digits' in sqlite:///runs/d.db: added {} in 58.1 s; now {}"
    few = "20 finished trials (20 complete)"
    many = ("20 finished trials (19 complete, 1 pruned), 5 repeated proposals answered from "
            "earlier trials, 4 over budget, not trained")  # fmt: skip
    assert shape([counts.format(few, many)]) == shape([counts.format(many, few)])
    reworded = many.replace("answered from earlier trials", "reused")
    assert shape([counts.format(few, reworded)]) != shape([counts.format(few, many)])
    table = ["| trial | val acc |", "|---|---|", "| #7 | **0.889** |", "| #28 (knee) | 0.961 |"]
    assert shape(table) == shape([*table[:2], "| #12 | 0.9 |", "| #3 (knee) | 0.5 |"])
    assert shape(table) != shape(["| trial | val acc | n |", "|---|---|---|", "| #7 | 1 | 2 |"])


def _write_doc(path: Path, blocks: list[tuple[str, list[str]]]) -> None:
    text = ["# a page", ""]
    for cmd, shown in blocks:
        text += ["<!-- output -->", "```", f"$ {cmd}", *shown, "```", "<!-- /output -->", ""]
    path.write_text("\n".join(text))


def test_a_stale_block_is_caught(tmp_path):
    """A copy of docs/cli/cost.md's first example as documented passes; the same with a line
    the program no longer prints, and with a command it no longer accepts, are reported."""
    (block, *_) = rd.parse(ROOT / "docs/cli/cost.md")
    unit = block.units[0]
    assert unit.source == "bitnas cost studies/digits.toml"
    stale = [ln.replace("dearest:", "priciest:") for ln in unit.shown]
    assert stale != unit.shown
    doc = tmp_path / "page.md"
    _write_doc(doc, [(unit.source, unit.shown), (unit.source, stale),
                     (f"{unit.source} --budget 5", unit.shown)])  # fmt: skip
    n, problems = rd.check([doc], tmp_path / "scratch")
    assert n == 3
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        f"{doc}:13: `bitnas cost studies/digits.toml`: its output's shape"
    )
    assert "\n    -priciest: # BitOps ARCH\n    +dearest: # BitOps ARCH" in problems[0]
    assert problems[1].startswith(
        f"{doc}:23: `bitnas cost studies/digits.toml --budget 5` exited 2"
    )
    assert "unrecognized arguments: --budget 5" in problems[1]


def test_regenerate_rewrites_only_the_outputs_of_each_block(tmp_path):
    """Outputs are replaced by what the commands print now; commands, the blank line between
    them, hidden commands and the text around the blocks stay; a second pass changes nothing."""
    doc = tmp_path / "page.md"
    doc.write_text(
        "# a page\n\ntext before\n\n<!-- output -->\n```\n$ echo hello\nbye (stale)\n\n"
        "$ printf 'a\\nb\\n'\nc\n```\n<!-- /output -->\n\nbetween\n\n<!-- output -->\n"
        "```python\n>>> x = 40\n>>> x + 2\n3\n>>> print(f'{x}!')\n```\n<!-- /output -->\n\n"
        "<!-- output: cat runs/note.txt -->\n```\nold note\n```\n<!-- /output -->\ntext after\n"
    )
    (tmp_path / "scratch" / "runs").mkdir(parents=True)
    (tmp_path / "scratch" / "runs" / "note.txt").write_text("new note\n")
    assert rd.regenerate([doc], tmp_path / "scratch") == 3
    want = (
        "# a page\n\ntext before\n\n<!-- output -->\n```\n$ echo hello\nhello\n\n"
        "$ printf 'a\\nb\\n'\na\nb\n```\n<!-- /output -->\n\nbetween\n\n<!-- output -->\n"
        "```python\n>>> x = 40\n>>> x + 2\n42\n>>> print(f'{x}!')\n40!\n```\n<!-- /output -->\n\n"
        "<!-- output: cat runs/note.txt -->\n```\nnew note\n```\n<!-- /output -->\ntext after\n"
    )
    assert doc.read_text() == want
    rd.regenerate([doc], tmp_path / "scratch")
    assert doc.read_text() == want


def test_a_server_block_shows_its_first_line_and_the_server_is_stopped(tmp_path):
    """`<!-- output (server) -->`: the command is started, its first line shown, the process
    stopped by its PID (its port no longer answers); a server that exits at once failed."""
    doc = tmp_path / "page.md"
    serve = "python -u -m http.server --bind 127.0.0.1 0"
    fails = "python busy.py"  # (a server command runs without a shell: no quoting here)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "busy.py").write_text("print('bitnas: error: port busy')\nexit(2)\n")
    doc.write_text(
        f"<!-- output (server) -->\n```\n$ {serve}\nold line\n```\n<!-- /output -->\n\n"
        f"<!-- output (server) -->\n```\n$ {fails}\nbitnas: error: x\n```\n<!-- /output -->\n"
    )
    t0 = time.perf_counter()
    assert rd.regenerate([doc], tmp_path / "scratch") == 2
    assert time.perf_counter() - t0 < 30
    text = doc.read_text()
    m = re.search(r"^Serving HTTP on 127\.0\.0\.1 port (\d+) ", text, re.M)
    assert m, text
    assert text.startswith(f"<!-- output (server) -->\n```\n$ {serve}\nServing HTTP")
    assert "old line" not in text and "bitnas: error: port busy\n```" in text
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(m[1])), timeout=5).close()


def test_every_output_shown_is_regenerated_or_says_why_not():
    """A fenced block showing a `$ ` command with output lines is an output block, or is marked
    `<!-- not regenerated: why -->` just above it."""
    fence = re.compile(r"(?P<before>[^\n]*)\n```[\w-]*\n(?P<body>.*?)^```$", re.S | re.M)
    missing = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text()
        for m in fence.finditer(text):
            lines = m["body"].splitlines()
            shows_output = any(ln.startswith("$ ") for ln in lines) and any(
                ln.strip() and not ln.startswith(("$ ", "#")) for ln in lines
            )
            marked = m["before"].startswith(("<!-- output", "<!-- not regenerated: "))
            if shows_output and not marked:
                missing.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 2}")
    assert not missing


@pytest.mark.slow
def test_every_documented_command_runs_and_prints_its_documented_shape(tmp_path):
    t0 = time.perf_counter()
    n, problems = rd.check(rd.doc_files(), tmp_path)
    assert not problems, "\n".join(problems) + "\n(rerun: python scripts/regenerate_docs.py)"
    assert n >= 11  # every block of docs/cli/*.md and docs/export.md was checked
    print(f"{n} documented output blocks checked in {time.perf_counter() - t0:.1f} s")
