"""A process-wide setting that compiles in several threads share (the recursion limit, the garbage
collector's switch): each thread setting and restoring it on its own left it changed for good when one read it
while another had it set. Depends on nothing."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["SharedSwitch"]

_SWITCHES: weakref.WeakSet = weakref.WeakSet()


class SharedSwitch:
    """`apply()` sets the setting and returns what to put back (None: nothing was changed); `restore(saved)`
    puts it back. The first thread in applies, the last one out restores; a forked child, which has none of
    the parent's other threads nor their hold on the lock, starts with no user and the setting put back."""

    def __init__(self, apply: Callable[[], object], restore: Callable[[object], None]) -> None:
        self._apply, self._restore = apply, restore
        self._lock = threading.Lock()
        self._users = 0
        self._saved: object = None
        _SWITCHES.add(self)

    @contextlib.contextmanager
    def held(self):
        with self._lock:
            if self._users == 0:
                self._saved = self._apply()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users = max(0, self._users - 1)  # a forked child starts at 0 (below)
                if self._users == 0 and self._saved is not None:
                    self._restore(self._saved)
                    self._saved = None

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        if self._users and self._saved is not None:
            self._restore(self._saved)
        self._users, self._saved = 0, None


def _after_fork_in_child() -> None:
    for switch in list(_SWITCHES):
        switch._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
