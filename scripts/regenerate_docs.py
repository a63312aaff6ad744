"""Rerun every worked example whose output README.md and docs/ show, and rewrite the blocks
with the real output (or, with ``--check``, compare their shape without writing).

A block of shown output is delimited in the Markdown source::

    <!-- output -->
    ```
    $ bitnas pareto digits --storage sqlite:///runs/docs-digits.db
    study 'digits' in sqlite:///runs/docs-digits.db: 24 finished trials (24 complete), ...
    ```
    <!-- /output -->

Inside it, a line starting with ``$ `` is a shell command and one starting with ``>>> `` a
Python statement (``... `` continues it); every other line is output, replaced by what the
command or statement prints now (stdout and stderr together; for a statement, also the
``repr`` of an expression, as the interactive interpreter shows it). ``<!-- output: CMD -->``
shows the whole block as the output of a shell command CMD that is not itself shown (e.g. the
start of a file an earlier command wrote). ``<!-- output (server) -->`` marks commands that
serve until stopped (``bitnas dashboard``): each is started, its output read up to its first
line (a server prints its URL once it listens) and the process then stopped by its PID.

All blocks run in one scratch folder, file by file in ``ORDER`` and block by block, so a block
may read what an earlier one wrote (``runs/docs-digits.db``): ``studies/`` and ``bench/`` come
from the repository, ``runs/`` starts empty. A regeneration trains for real (about half an
hour on 2 shared cores; 10 minutes of it are the sweep of docs/cli/run.md, whose storage the
sweep blocks of pareto.md and report.md then read)::

    python scripts/regenerate_docs.py                 # rerun and rewrite every block
    python scripts/regenerate_docs.py --keep /tmp/d   # ... and keep the scratch folder
    python scripts/regenerate_docs.py --keep /tmp/d docs/cli/report.md  # one file, reusing it
    python scripts/regenerate_docs.py --check         # compare shapes, write nothing

``--check`` (what ``tests/scripts/test_regenerate_docs.py`` runs in CI) is the cheap version:
``bitnas`` commands run in this process (imports paid once), the study files are fixtures
(``FIXTURES``: 1 epoch, depth up to 2, the file's own ``trials`` 8) and ``bitnas cost``
estimates from 2,000 draws, not 20,000; a server gets ``--port 0`` (any free port: the
documented one may be taken on a CI machine). Every command is otherwise run exactly as documented.
It then compares the *shape* of each output with the documented one (``shape``): what the
program prints, not what the data or the clock make of it.
"""

from __future__ import annotations

import argparse
import code
import contextlib
import difflib
import io
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, also when loaded by path
from doc_fixtures import CHECK_SAMPLES, FIXTURES  # noqa: E402
from doc_shape import shape, template  # noqa: E402

__all__ = ["check", "parse", "regenerate", "shape", "template"]

#: Files whose blocks run first, in this order (later ones read what earlier ones wrote); any
#: other file with blocks follows, sorted.
ORDER = (
    "docs/cli/cost.md",
    "docs/cli/run.md",
    "docs/cli/pareto.md",
    "docs/cli/export.md",
    "docs/cli/report.md",
    "docs/export.md",
)

BLOCK = re.compile(
    r"^<!-- output(?P<server> \(server\))?(?:: (?P<hidden>.+?))? -->\n"
    r"(?P<fence>```[\w-]*\n)(?P<body>.*?)^```\n"
    r"<!-- /output -->$",
    re.S | re.M,
)


@dataclass
class Unit:
    """One command of a block and the output shown under it."""

    kind: str  # "shell", "python", "hidden" (a shell command not shown) or "server"
    source: str  # the command, or the statement (continuation lines included)
    shown: list[str] = field(default_factory=list)
    gap: bool = False  # a blank line separates it from the unit before


@dataclass
class Block:
    path: Path
    line: int  # of its opening marker, 1-based
    span: tuple[int, int]  # of the whole match in the file's text
    fence: str
    units: list[Unit]

    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"


def parse(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in BLOCK.finditer(text):
        units: list[Unit] = []
        if m["hidden"]:
            units.append(Unit("hidden", m["hidden"], m["body"].splitlines()))
        else:
            blank = False
            for ln in m["body"].splitlines():
                if ln.startswith("$ "):
                    kind = "server" if m["server"] else "shell"
                    units.append(Unit(kind, ln[2:], gap=blank and bool(units)))
                elif ln.startswith(">>> "):
                    units.append(Unit("python", ln[4:], gap=blank and bool(units)))
                elif ln.startswith("... ") and units and units[-1].kind == "python":
                    units[-1].source += "\n" + ln[4:]
                elif units:
                    units[-1].shown.append(ln)
                else:
                    raise SystemExit(f"{path}: an output block must start with `$ ` or `>>> `")
                blank = not ln.strip()
            for u in units:  # the blank line before the next command is a gap, not output
                while u.shown and not u.shown[-1].strip():
                    u.shown.pop()
        line = text.count("\n", 0, m.start()) + 1
        blocks.append(Block(path, line, m.span(), m["fence"], units))
    return blocks


def doc_files(paths: list[Path] | None = None) -> list[Path]:
    if paths:
        return paths
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    first = [ROOT / p for p in ORDER]
    return first + [p for p in found if p not in first and BLOCK.search(p.read_text())]


# -- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    status: int  # 0: ran; else the exit status, or 1 for a Python exception
    lines: list[str]


class Runner:
    """Runs units in one scratch folder: for real (``check=False``: ``bitnas`` as a process,
    the repository's study files), or cheaply (``check=True``, see the module docstring)."""

    def __init__(self, scratch: Path, *, check: bool) -> None:
        self.scratch, self.check = scratch, check
        (scratch / "runs").mkdir(parents=True, exist_ok=True)
        for name in ("studies", "bench"):
            if check:  # copies (300 kB): the fixtures are written into them
                shutil.copytree(ROOT / name, scratch / name, dirs_exist_ok=True)
            elif not (scratch / name).exists():
                (scratch / name).symlink_to(ROOT / name)
        if check:
            self._fixtures()
        self.env = {
            **os.environ,
            "PYTHONWARNINGS": "ignore",
            "RAY_USAGE_STATS_ENABLED": "0",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _fixtures(self) -> None:
        for rel, changes in FIXTURES.items():
            text = (ROOT / rel).read_text()
            for old, new in changes:
                if old not in text:
                    raise SystemExit(f"fixture {rel}: {old.strip()!r} is no longer in the file")
                text = text.replace(old, new)
            (self.scratch / rel).write_text(text)

    def run(self, u: Unit, namespace: dict[str, object]) -> Ran:
        if u.kind == "python":
            return self._python(u.source, namespace)
        if u.kind == "server":
            return self._server(u.source)
        argv = shlex.split(u.source)
        if (
            self.check
            and u.kind == "shell"
            and argv[:1] == ["bitnas"]
            and not _shell_syntax(u.source)
        ):
            return self._in_process(argv[1:])
        p = subprocess.run(
            u.source,
            shell=True,
            cwd=self.scratch,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=3600,
        )
        return Ran(p.returncode, p.stdout.splitlines())

    def _server(self, cmd: str, timeout: float = 120.0) -> Ran:
        """Start ``cmd`` (no shell: its PID is the server's), read its output up to its first
        line, stop it by that PID; one that exits (within a second of that line) failed."""
        if _shell_syntax(cmd):
            raise SystemExit(f"a server command is run without a shell: {cmd!r}")
        argv = shlex.split(cmd) + (["--port", "0"] if self.check else [])
        p = subprocess.Popen(
            argv, cwd=self.scratch, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert p.stdout is not None
        lines: list[str] = []
        try:
            ready, _, _ = select.select([p.stdout], [], [], timeout)
            first = p.stdout.readline() if ready else ""
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(1.0)  # an error message is followed by the exit; a URL by serving
            if first and p.poll() is None:
                return Ran(0, [first.rstrip("\n")])
            if not ready:
                return Ran(1, [f"no output from `{cmd}` in {timeout:.0f} s"])
            lines = [first.rstrip("\n"), *p.stdout.read().splitlines()]
            return Ran(p.wait() or 1, [ln for ln in lines if ln])
        finally:
            if p.poll() is None:
                p.terminate()  # SIGTERM to its own PID
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            p.stdout.close()

    @contextlib.contextmanager
    def _here(self, out: io.StringIO) -> Iterator[None]:
        old = Path.cwd()
        os.chdir(self.scratch)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                yield
        finally:
            os.chdir(old)

    def _in_process(self, args: list[str]) -> Ran:
        from bitnas.studies import cli

        out = io.StringIO()
        samples, cli.SAMPLES = cli.SAMPLES, CHECK_SAMPLES
        try:
            with self._here(out):
                try:
                    status = cli.main(args)
                except SystemExit as e:  # argparse refuses the command line
                    status = e.code if isinstance(e.code, int) else 2
        finally:
            cli.SAMPLES = samples
        return Ran(status, out.getvalue().splitlines())

    def _python(self, source: str, namespace: dict[str, object]) -> Ran:
        out = io.StringIO()
        status = 0
        with self._here(out):
            try:
                compiled = code.compile_command(source, "<doc>", "single")
                assert compiled is not None, f"incomplete statement: {source!r}"
                exec(compiled, namespace)
            except Exception as e:
                print(f"{type(e).__name__}: {e}")
                status = 1
        return Ran(status, out.getvalue().splitlines())


def _shell_syntax(cmd: str) -> bool:
    return bool(re.search(r"[|&;<>()$`]", cmd))


def expected_failure(shown: list[str]) -> bool:
    """The documented output is an error message: the command is shown failing."""
    return bool(shown) and shown[0].startswith(("bitnas: error:", "Traceback"))


# -- the two modes ------------------------------------------------------------------------------


def run_blocks(
    files: list[Path], scratch: Path, *, check: bool
) -> Iterator[tuple[Block, list[Ran]]]:
    runner = Runner(scratch, check=check)
    for path in files:
        for b in parse(path):
            namespace: dict[str, object] = {"__name__": "__doc__"}
            yield b, [runner.run(u, namespace) for u in b.units]


def check(files: list[Path], scratch: Path) -> tuple[int, list[str]]:
    """(blocks checked, problems): a command that fails where the docs show it succeed (or
    the reverse), or an output whose shape is not the documented one."""
    problems: list[str] = []
    n = 0
    for b, results in run_blocks(files, scratch, check=True):
        n += 1
        for u, r in zip(b.units, results, strict=True):
            what = f"{b.where()}: `{u.source.splitlines()[0]}`"
            if (r.status != 0) != expected_failure(u.shown):
                tail = "\n    ".join(r.lines[-5:])
                problems.append(
                    f"{what} exited {r.status}, documented "
                    f"{'failing' if expected_failure(u.shown) else 'succeeding'}:\n    {tail}"
                )
                continue
            # as sets: the order of data rows (which trial state is most common) is data too
            want, got = sorted(set(shape(u.shown))), sorted(set(shape(r.lines)))
            if want != got:
                diff = "\n    ".join(
                    difflib.unified_diff(want, got, "documented", "now", lineterm="", n=0)
                )
                problems.append(f"{what}: its output's shape changed\n    {diff}")
    return n, problems


def regenerate(files: list[Path], scratch: Path) -> int:
    """Rewrite every block of ``files`` with the output its commands print now; returns the
    number of blocks. A command that fails where the docs show it succeed stops it."""
    new: dict[Path, list[tuple[Block, str]]] = {}
    for b, results in run_blocks(files, scratch, check=False):
        body: list[str] = []
        for u, r in zip(b.units, results, strict=True):
            if (r.status != 0) != expected_failure(u.shown):
                raise SystemExit(
                    f"{b.where()}: `{u.source}` exited {r.status}:\n" + "\n".join(r.lines)
                )
            if u.gap:
                body.append("")
            if u.kind != "hidden":
                prompt = ">>> " if u.kind == "python" else "$ "
                body += [prompt + u.source.replace("\n", "\n... ")]
            body += [ln.rstrip() for ln in r.lines]
        while body and not body[-1]:
            body.pop()
        kind = b.units[0].kind
        marker = {"hidden": f"<!-- output: {b.units[0].source} -->",
                  "server": "<!-- output (server) -->"}.get(kind, "<!-- output -->")  # fmt: skip
        new.setdefault(b.path, []).append(
            (b, f"{marker}\n{b.fence}" + "\n".join(body) + "\n```\n<!-- /output -->")
        )
        print(f"{b.where()}: {len(b.units)} commands rerun", flush=True)
    for path, repl in new.items():  # read again: the file may have been edited meanwhile
        now = parse(path)
        if [u.source for b in now for u in b.units] != [u.source for b, _ in repl for u in b.units]:
            raise SystemExit(f"{path}: its commands changed while they ran; run it again")
        text = path.read_text(encoding="utf-8")
        for b, (_, block) in sorted(zip(now, repl, strict=True), key=lambda x: -x[0].span[0]):
            text = text[: b.span[0]] + block + text[b.span[1] :]
        path.write_text(text, encoding="utf-8")
    return sum(len(r) for r in new.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("files", nargs="*", type=Path, help="Markdown files (default: all)")
    ap.add_argument("--check", action="store_true", help="compare shapes cheaply, write nothing")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="scratch folder to use and keep")
    args = ap.parse_args(argv)
    files = doc_files([p.resolve() for p in args.files] or None)
    with contextlib.ExitStack() as stack:
        scratch = args.keep or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="bitnas-docs-"))
        )
        if args.check:
            n, problems = check(files, scratch)
            print(
                "\n".join(problems)
                or f"{n} blocks: every command runs and prints its documented shape"
            )
            return 1 if problems else 0
        n = regenerate(files, scratch)
        print(f"rewrote {n} blocks in {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
