"""Ctrl-C that always stops a training run.

Python ignores an exception raised inside a weakref callback or a ``__del__`` ("Exception
ignored in ..."), and the default SIGINT handler raises KeyboardInterrupt wherever the
interpreter happens to be, garbage collection included: measured once in CI, a SIGINT
landed in a ``WeakKeyDictionary`` callback and the run went on to its last epoch. Here
the signal is also remembered, and the loop raises KeyboardInterrupt itself at the next
step boundary when the first one was swallowed.
"""
from __future__ import annotations

import signal
import threading


class InterruptGuard:
    """A context manager; :meth:`check` raises KeyboardInterrupt once SIGINT was seen."""

    def __init__(self):
        self.seen = False
        self._previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
