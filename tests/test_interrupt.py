"""Ctrl-C during garbage collection: Python swallows the KeyboardInterrupt raised inside a
``__del__`` / weakref callback; the training loop's guard still stops the run."""
import os
import signal

import pytest

from lucid.cli._interrupt import InterruptGuard


class _SignalsInDel:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)   # the handler runs here, inside __del__


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigint_swallowed_in_a_destructor_is_raised_at_the_next_check():
    with InterruptGuard() as guard:
        _SignalsInDel()                       # destroyed at once: the interrupt is swallowed
        swallowed = True                      # (reached: nothing propagated)
        assert swallowed and guard.seen
        with pytest.raises(KeyboardInterrupt):
            guard.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_signal_check_does_nothing():
    with InterruptGuard() as guard:
        guard.check()
    assert not guard.seen
