"""Ctrl-C that cannot be lost.

Python turns SIGINT into a KeyboardInterrupt at the next bytecode of the main thread. When that
bytecode belongs to a finalizer (a ``__del__``, a weakref callback run by the garbage
collector), the interpreter prints "Exception ignored in ..." and carries on: the run would go
on to its target as if never interrupted (seen about once in a dozen runs of
tests/reliability/test_crash_resume.py on a loaded machine). ``catching_interrupts`` installs a
handler that records the signal before raising, and the local runner calls ``check`` between
trials and at every reported epoch, so an interrupt swallowed once is raised again where it is
handled (the running trial closed FAIL "interrupted", the command exits 130).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["catching_interrupts", "check"]

_seen = threading.Event()


def _handler(signum: int, frame: FrameType | None) -> None:
    _seen.set()
    raise KeyboardInterrupt


@contextmanager
def catching_interrupts() -> Iterator[None]:
    """Within the block, Ctrl-C is recorded as well as raised (main thread only; elsewhere,
    or where a program installed its own handler, nothing changes)."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    _seen.clear()
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _seen.clear()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came (inside ``catching_interrupts``) and was
    swallowed; nothing otherwise."""
    if _seen.is_set():
        raise KeyboardInterrupt
