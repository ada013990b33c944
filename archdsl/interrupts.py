"""Ctrl-C, remembered: the command line installs this before anything heavy loads (archdsl._launch) and while a
command runs (cli.signals.interruptible), so an interrupt that an extension turns into another exception
(onnxruntime's import: pybind11's ImportError "initialization failed") still ends as `interrupted`. Depends on
nothing, so that loading it is instant."""

from __future__ import annotations

import contextlib
import os

__all__ = ["deferred_signals", "fd_open", "inherited_fds", "interruption", "note_inherited_fds", "note_signal",
           "record_interrupts", "settled", "stopping_signals", "was_interrupted"]

_interrupted: list[int] = []  # the signals (Ctrl-C's SIGINT, SIGTERM, SIGHUP) that arrived while recording


_inherited: list[frozenset[int]] = []  # note_inherited_fds's, for the command line alone


def note_inherited_fds() -> None:
    """Note the descriptors the command started with (a shell's 3>>log), as it loads, before a library opens
    its own: onnxruntime's cache database took fds 3-5, which -o /dev/fd/4 wrote into (review83 hunt). The
    listing's own descriptor, closed once listed, is left out (review84 hunt)."""
    try:
        listed = [int(n) for n in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        return
    _inherited[:] = [frozenset(fd for fd in listed if fd_open(fd))]


def fd_open(fd: int) -> bool:
    """Whether descriptor fd is open in this process (a number past the OS's range is not)."""
    try:
        os.fstat(fd)
        return True
    except (OSError, OverflowError):
        return False


def inherited_fds() -> frozenset[int] | None:
    """The descriptors note_inherited_fds saw, or None where it did not run (the Python API)."""
    return _inherited[0] if _inherited else None


def was_interrupted() -> bool:
    """Whether Ctrl-C (or SIGTERM, SIGHUP) came: an interrupt inside an extension (onnxruntime's import)
    surfaces as another exception (pybind11's ImportError "initialization failed"), which is then an
    interrupt all the same."""
    return bool(_interrupted)


def stopping_signals() -> list:
    """SIGTERM and SIGHUP (where the platform has it): the signals besides Ctrl-C that stop a command."""
    import signal
    return [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]


def note_signal(signum: int) -> None:
    """Remember a signal whose handler raises (SIGTERM's SystemExit), for was_interrupted."""
    _interrupted.append(signum)


def interruption() -> BaseException:
    """The exception the last signal stands for: KeyboardInterrupt for Ctrl-C, exit 128 + N for the others."""
    import signal
    signum = _interrupted[-1] if _interrupted else signal.SIGINT
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


@contextlib.contextmanager
def record_interrupts():
    """Ctrl-C raises KeyboardInterrupt as Python's own handler does, and is remembered (was_interrupted)."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_int(signum, frame):
        _interrupted.append(signum)
        raise KeyboardInterrupt
    _interrupted.clear()  # main() called again in one process: an earlier run's Ctrl-C is not this one's
    before = signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@contextlib.contextmanager
def deferred_signals():
    """Ctrl-C, SIGTERM and SIGHUP wait until the block ends, then act as they would have: renaming a model
    and its .data file (or a train step and its eval model) into place is one act. Blocking the signals
    (pthread_sigmask) would not do: another thread (onnxruntime's, the weight writers') then takes them and
    Python still raises in the main thread; this holds them in Python's own handlers instead."""
    import signal
    import threading
    held: list[int] = []  # the signals that came, for the block to look at (a commit undoes itself)
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    before = {s: h for s in [signal.SIGINT, *stopping_signals()]
              if (h := signal.getsignal(s)) is not None}  # None: not set from Python
    for s in before:
        signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield held
    finally:
        for s, h in before.items():
            signal.signal(s, h)
        for s in dict.fromkeys(held):  # each once, in order: the first one's handler raises
            signal.raise_signal(s)


@contextlib.contextmanager
def settled():
    """A command whose files are in place finishes what is left (its --report, the 'wrote' line) and exits 0:
    Ctrl-C, SIGTERM and SIGHUP are held and dropped, since an exit of 130 says the files are the ones before
    (a Ctrl-C during a build's report exited 130 with the new model written: cli5 hunt)."""
    with deferred_signals() as held:
        try:
            yield
        finally:
            held.clear()
