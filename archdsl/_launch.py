"""The `archdsl` command's entry point: Ctrl-C is recorded before anything heavy loads, so an interrupt while
numpy, onnx or onnxruntime are still importing ends as `interrupted` (exit 130), as one later does, not as a
traceback or an extension's ImportError."""

from __future__ import annotations

import sys


def main() -> int:
    from .interrupts import note_inherited_fds, record_interrupts, was_interrupted
    note_inherited_fds()
    with record_interrupts():
        try:
            from .cli import main as cli_main
        except BaseException:  # KeyboardInterrupt, or what an interrupted extension import made of it
            if was_interrupted():
                print("interrupted", file=sys.stderr)
                return 130
            raise
    try:
        return cli_main()
    except KeyboardInterrupt:  # in the few ms of argument parsing before the command's own handling starts
        print("interrupted", file=sys.stderr)
        return 130
