"""How a command ends when it is stopped: every writer's cleanup runs, then a short word instead of a
traceback. Shared by `archdsl` and the benchmarks (`archdsl bench`, `python -m archdsl.training.bench`),
whose temp folders of models and child processes a traceback used to leave behind."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from ..interrupts import note_signal, record_interrupts, stopping_signals, was_interrupted

__all__ = ["StdoutFailed", "exit_cleanly_on_signals", "interruptible", "record_interrupts", "stdout_closed",
           "was_interrupted"]


class StdoutFailed(Exception):
    """Writing the command's output failed (`archdsl ops > /dev/full`): a one-line error, not a traceback."""


class _GuardedStdout:
    """sys.stdout whose write and flush errors (other than a reader gone away) become StdoutFailed, so that
    every command reports them the same way, wherever its printing happens."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._call(self._stream.write, text)

    def flush(self):
        return self._call(self._stream.flush)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StdoutFailed(e.strerror or str(e)) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def stdout_closed() -> bool:
    """Started with stdout closed (`>&-`): Python makes sys.stdout None, and print() drops what it is given."""
    return sys.stdout is None


@contextlib.contextmanager
def exit_cleanly_on_signals():
    """SIGTERM and SIGHUP unwind like Ctrl-C (an exception, so every writer's cleanup runs: a killed build left
    its temp directory of partial weights, a killed train its .tmp file), then exit 128 + the signal. The
    previous handlers come back afterwards (main() may be called from a program of its own)."""
    import signal
    import threading
    sigs = stopping_signals()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        note_signal(signum)  # raised inside an extension's import, it comes out as an ImportError
        raise SystemExit(128 + signum)
    before = {s: signal.signal(s, stop) for s in sigs}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def interruptible(main: Callable[[], int]) -> int:
    """main() under exit_cleanly_on_signals; Ctrl-C says `interrupted` and exits 130; a reader that went away
    (`archdsl bench | head`) ends it quietly; output that cannot be written (a full disk) is an error, exit 1."""
    guarded = isinstance(sys.stdout, _GuardedStdout) or sys.stdout is None
    if not guarded:
        sys.stdout = _GuardedStdout(sys.stdout)
    with exit_cleanly_on_signals(), record_interrupts(), _escaping_what_the_terminal_cannot_show():
        try:
            status = main()
            if sys.stdout is not None:  # None: started with stdout closed (`archdsl build ... >&-`)
                sys.stdout.flush()
            return status
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 0
        except StdoutFailed as e:
            _drop_pending_output()
            print(f"error: cannot write the output to stdout: {e}", file=sys.stderr)
            return 1
        finally:
            if not guarded:
                sys.stdout = sys.stdout._stream


def _escape(e: UnicodeError):
    """On a C locale's stream: the bytes a file name's surrogate escapes stand for go out as those bytes (as
    its surrogateescape wrote them); any other character it cannot encode as a \\u escape."""
    import codecs
    if isinstance(e, UnicodeEncodeError):
        chunk = e.object[e.start:e.end]
        if all(0xDC80 <= ord(c) <= 0xDCFF for c in chunk):
            return bytes(ord(c) - 0xDC00 for c in chunk), e.end
    return codecs.backslashreplace_errors(e)


@contextlib.contextmanager
def _escaping_what_the_terminal_cannot_show():
    """A layer named "l\u2026" printed to an ASCII or Latin-1 stdout (PYTHONIOENCODING=ascii, a C locale) was an
    internal error (UnicodeEncodeError): such characters are written as \\u2026 escapes instead, on stdout
    and stderr, for the command's run only. A C locale's streams escape surrogates only, so they change too."""
    import codecs
    codecs.register_error("archdsl-escape", _escape)
    changed = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        stream = getattr(stream, "_stream", stream)  # the guarded stdout's own
        errors = getattr(stream, "errors", None)
        if errors in ("strict", "surrogateescape") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="archdsl-escape" if errors == "surrogateescape" else "backslashreplace")
                changed.append((stream, errors))
            except (ValueError, OSError):  # already written to in a way that cannot change
                pass
    try:
        yield
    finally:
        for stream, errors in changed:
            try:
                stream.reconfigure(errors=errors)
            except (ValueError, OSError):
                pass


def _drop_pending_output() -> None:
    """The text still buffered for stdout would fail again when Python flushes it at exit (a second error,
    and exit status 120): stdout now leads to /dev/null."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real stdout (captured by a test harness)
        pass
