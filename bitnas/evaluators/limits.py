"""Caps on one trial's wall time and memory, enforced from outside the evaluator.

A capped trial runs in a child process; the parent watches it and kills it (SIGKILL) when it
passes its wall time or its resident memory passes the cap. Enforcing from outside is the
point: a training loop stuck inside one epoch, or a C kernel that never returns to Python,
never calls ``report``, so no in-process check (a timer, a signal handler) can be relied on.

Design choices, and why:

- One fresh process per trial, forked from a ``forkserver`` that has already imported torch and
  bitnas: a capped trial costs tens of ms more, not the second or more of a ``spawn`` that
  imports torch again (``bench/limits_overhead.py``). A trial never
  inherits another trial's heap, so its memory is its own; the server is single-threaded, so
  forking it is safe (forking the runner itself, with torch's and Ray's threads, is not).
- Memory is the child's resident set (RSS), read from ``/proc`` every ``POLL_S``. RLIMIT_AS is
  not used: torch reserves far more address space than it touches (~640 MB of virtual memory
  for ~220 MB resident after ``import torch``), so an address-space cap fails trials that fit.
  The price of polling: an allocation that grows faster than the machine's free memory within
  one poll interval can still meet the kernel's OOM killer first; that trial still ends FAIL,
  its reason naming the signal.
- The child dies with its parent (PR_SET_PDEATHSIG on Linux): a ``kill -9`` of ``bitnas run``
  leaves no orphaned training behind. Ctrl-C is handled by the parent only (the child ignores
  SIGINT), which kills the child and closes the trial.
- ``report`` calls are forwarded to the parent over a pipe and answered there, so pruning and
  learning curves work as without caps. The evaluator travels by cloudpickle, so evaluators
  shipped by value (functions defined in a script, as Ray does) work inside Ray tasks too.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from bitnas.errors import SpecError, TrialLimitError
from bitnas.evaluators._base import EvalResult, Evaluator, Report
from bitnas.spaces.architecture import Architecture

__all__ = ["LimitedEvaluator", "TrialLimits", "limited"]

#: How often the parent checks the child's memory and the clock.
POLL_S = 0.05
#: How long a trial's process may take to start (fork server included) before it counts as hung.
STARTUP_S = 300.0
#: Modules the fork server imports once, so that each trial's fork starts with them loaded:
#: torch, scikit-learn, and torch._dynamo, which torch imports lazily in the first optimizer's
#: constructor (seconds, measured in bench/limits_overhead.py). The dataset itself is loaded
#: by each trial's process: milliseconds for digits, ~2 s to regenerate mnist1d.
PRELOAD = [
    "bitnas.evaluators.training",
    "torch._dynamo",
    "sklearn.model_selection",
    "sklearn.datasets",
    "cloudpickle",
]
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class TrialLimits:
    """[limits] in a study file: caps on one trial (0: no cap).

    ``trial_seconds``: wall time of one trial's evaluation (training and measuring).
    ``trial_memory_mb``: resident memory of the process that runs the trial, in MiB; it
    includes the Python runtime, torch and the dataset (about 300 MiB for digits on CPU).
    """

    trial_seconds: float = 0
    trial_memory_mb: int = 0

    def __post_init__(self) -> None:
        s = self.trial_seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < math.inf:
            raise SpecError(
                f"`trial_seconds` must be a number of seconds >= 0 (0: no cap), got {s!r}",
                field="trial_seconds",
            )
        m = self.trial_memory_mb
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise SpecError(
                f"`trial_memory_mb` must be an integer number of MiB >= 0 (0: no cap), got {m!r}",
                field="trial_memory_mb",
            )

    @property
    def active(self) -> bool:
        return bool(self.trial_seconds or self.trial_memory_mb)


@dataclass(frozen=True)
class LimitedEvaluator(Evaluator):
    """Runs ``inner`` under ``limits``, each trial in its own child process (see the module
    docstring). A trial over a cap raises TrialLimitError naming the cap."""

    inner: Evaluator
    limits: TrialLimits
    objective: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "objective", self.inner.objective)

    def prepare(self) -> None:
        if self.limits.trial_memory_mb and not os.path.exists("/proc/self/statm"):
            raise SpecError(
                "[limits] `trial_memory_mb` needs Linux (/proc) to measure a trial's memory; "
                "remove it on this system"
            )
        self.inner.prepare()

    def evaluate(
        self, arch: Architecture, *, seed: int, report: Report | None = None
    ) -> EvalResult:
        return _run_capped(self.inner, self.limits, arch, seed, report)


def limited(evaluator: Evaluator, limits: TrialLimits) -> Evaluator:
    """``evaluator`` under ``limits``; unchanged (in-process) when no cap is set."""
    return LimitedEvaluator(evaluator, limits) if limits.active else evaluator


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _context() -> Any:
    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _run_capped(
    inner: Evaluator,
    limits: TrialLimits,
    arch: Architecture,
    seed: int,
    report: Report | None,
) -> EvalResult:
    import cloudpickle

    ctx = _context()
    parent, child = ctx.Pipe()
    payload = cloudpickle.dumps((inner, arch.to_json(), seed, report is not None))
    proc = ctx.Process(target=_child, args=(child, payload), daemon=True)
    with _without_main():
        proc.start()
    child.close()
    cap = limits.trial_memory_mb * 2**20
    peak = 0
    started = False
    # the clock starts when the child is ready to evaluate: starting the fork server (an
    # import of torch, seconds on a busy machine) is not the trial's time
    start = time.monotonic()
    seconds = STARTUP_S
    try:
        while True:
            left = seconds - (time.monotonic() - start)
            if seconds and left <= 0:
                if not started:
                    raise TrialLimitError(f"the trial's process did not start in {STARTUP_S} s")
                raise TrialLimitError(
                    f"stopped at the wall time limit of {limits.trial_seconds:g} s "
                    f"([limits] trial_seconds = {limits.trial_seconds:g})"
                )
            ready = parent.poll(min(POLL_S, left) if seconds else POLL_S)
            rss = _rss_bytes(proc.pid) if proc.pid else 0
            peak = max(peak, rss)
            if cap and rss > cap:
                raise TrialLimitError(
                    f"stopped at the memory limit: resident memory reached {rss / 2**20:,.0f} "
                    f"MiB > {limits.trial_memory_mb:,} MiB ([limits] trial_memory_mb = "
                    f"{limits.trial_memory_mb})"
                )
            if not ready:
                if not proc.is_alive() and not parent.poll():
                    raise _died(proc)
                continue
            try:
                kind, *msg = parent.recv()
            except EOFError:
                raise _died(proc) from None
            if kind == "started":
                started = True
                start, seconds = time.monotonic(), limits.trial_seconds
            elif kind == "report":
                step, metrics = msg
                parent.send(bool(report(step, metrics)) if report is not None else False)
            elif kind == "result":
                result: EvalResult = msg[0]
                peak = max(peak, int(msg[1]) if len(msg) > 1 else 0)
                info = {**result.info, "peak_rss_mb": round(peak / 2**20, 1)}
                return replace(result, info=info)
            else:
                raise _rebuild(*msg)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
        parent.close()


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Start a child without re-importing the parent's ``__main__`` in it.

    multiprocessing re-imports ``__main__`` in a forkserver or spawn child so that functions
    defined there can be unpickled. A capped trial ships its evaluator by cloudpickle (which
    carries ``__main__`` functions by value), so it needs none, and the re-import does harm:
    it would run an unguarded launch script again (a whole study inside every trial), fails
    outright for ``python -`` (stdin), and costs the script's imports in every trial. The
    standard library has no switch for it, so the preparation data is trimmed while this
    child starts.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data

    def trimmed(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
        return data

    spawn.get_preparation_data = trimmed
    try:
        yield
    finally:
        spawn.get_preparation_data = original


def _died(proc: Any) -> TrialLimitError:
    proc.join(timeout=5)
    code = proc.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = " (SIGKILL: likely the system ran out of memory)" if -code == signal.SIGKILL else ""
        return TrialLimitError(f"the trial's process was killed by {name}{why}")
    return TrialLimitError(f"the trial's process ended without a result (exit code {code})")


def _rebuild(blob: bytes | None, text: str, tb: str) -> BaseException:
    """The child's exception, with its traceback as a note; as text where it will not pickle."""
    exc: BaseException | None = None
    if blob is not None:
        with contextlib.suppress(Exception):
            exc = pickle.loads(blob)
    if exc is None:
        exc = TrialLimitError(text)
    exc.add_note("raised in the trial's process:\n" + tb[-3000:])
    return exc


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent (the fork server, which itself
    exits with the run) goes away."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child(conn: Connection, payload: bytes) -> None:
    import cloudpickle

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    evaluator, arch_json, seed, has_report = cloudpickle.loads(payload)
    conn.send(("started",))

    def report(step: int, metrics: Any) -> bool:
        conn.send(("report", step, {k: float(v) for k, v in metrics.items()}))
        return bool(conn.recv())

    try:
        arch = Architecture.from_json(arch_json)
        result = evaluator.evaluate(arch, seed=seed, report=report if has_report else None)
        import resource

        # the child's own peak (KiB on Linux): a trial shorter than one poll would show none
        conn.send(("result", result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
    except BaseException as e:
        tb = "".join(traceback.format_exception(e))
        blob: bytes | None
        try:
            blob = pickle.dumps(e)
            pickle.loads(blob)
        except Exception:
            blob = None
        conn.send(("error", blob, f"{type(e).__name__}: {e}", tb))
    finally:
        conn.close()
