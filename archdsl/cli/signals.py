"""How a command ends when it is stopped: every writer's cleanup runs, then a short word instead of a
traceback. Shared by `archdsl` and the benchmarks (`archdsl bench`, `python -m archdsl.training.bench`),
whose temp folders of models and child processes a traceback used to leave behind."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

__all__ = ["exit_cleanly_on_signals", "interruptible"]


@contextlib.contextmanager
def exit_cleanly_on_signals():
    """SIGTERM and SIGHUP unwind like Ctrl-C (an exception, so every writer's cleanup runs: a killed build left
    its temp directory of partial weights, a killed train its .tmp file), then exit 128 + the signal. The
    previous handlers come back afterwards (main() may be called from a program of its own)."""
    import signal
    import threading
    sigs = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)
    before = {s: signal.signal(s, stop) for s in sigs}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def interruptible(main: Callable[[], int]) -> int:
    """main() under exit_cleanly_on_signals; Ctrl-C says `interrupted` and exits 130; a reader that went away
    (`archdsl bench | head`) ends it quietly."""
    with exit_cleanly_on_signals():
        try:
            return main()
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 0
