"""Ctrl-C during garbage collection: Python swallows the KeyboardInterrupt raised inside a
``__del__`` / weakref callback; the training loop's guard still stops the run."""
import os
import signal

import pytest

from lucid.cli._interrupt import InterruptGuard


class _SignalsInDel:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)   # the handler runs here, inside __del__


def test_a_sigint_inside_a_destructor_is_raised_at_the_next_check(recwarn):
    with InterruptGuard() as guard:
        _SignalsInDel()                       # destroyed at once: nothing may be raised there
        reached = True
        assert reached and guard.seen
        assert not [w for w in recwarn if "Exception ignored" in str(w.message)]
        with pytest.raises(KeyboardInterrupt):
            guard.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_signal_check_does_nothing():
    with InterruptGuard() as guard:
        guard.check()
    assert not guard.seen


def test_a_sigint_elsewhere_raises_at_once():
    import time
    with InterruptGuard() as guard:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)                     # interrupted long before this ends
        assert guard.seen
