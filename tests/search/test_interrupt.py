"""A Ctrl-C that lands in a finalizer is not lost: it is recorded, and ``check`` raises it
again where the runner can handle it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from bitnas.search.interrupt import catching_interrupts, check


class _InterruptedWhileFinalized:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs here, inside the finalizer: Python ignores it


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_a_finalizer_swallowed_is_raised_again():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with catching_interrupts():
        _InterruptedWhileFinalized()  # freed at once; "Exception ignored in ..." on stderr
        with pytest.raises(KeyboardInterrupt):
            check()
    check()  # outside the block: forgotten, nothing raised
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_without_the_block_a_finalizer_swallows_it_for_good():
    _InterruptedWhileFinalized()
    check()  # what the runner could not see before interrupt.py
