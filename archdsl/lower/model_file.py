"""Model files written whole or not at all: each into a temp dir beside its target, renamed in place when all
of them are written (a train step and its eval model); external data past protobuf's 2 GiB or when asked, and a
.data file the replaced model used removed when the new one needs none."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import EncodeError

from .. import files
from ..diagnostics import ArchError, utf8, writing
from ..interrupts import deferred_signals
from ..user_cache import private_folder, private_path

__all__ = ["EXTERNAL_DATA_THRESHOLD", "Staged", "cleanup_all", "commit_all", "data_file_name",
           "no_external_data_beside", "write_model", "write_models"]

EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2  # protobuf's 2 GiB limit, with room for the graph


def write_model(model: onnx.ModelProto, out: str | Path, external_data: bool | None = None) -> list[Path]:
    """Write atomically: into a temp dir beside the target, then rename. External data past 2 GiB
    (onnx then moves the weights out of `model` itself: reload the file to use them again)."""
    return write_models([(model, out)], external_data)


def write_models(items: list[tuple[onnx.ModelProto, str | Path]], external_data: bool | None = None) -> list[Path]:
    """Several models as one write: every file goes to a temp dir beside its target first, and the renames
    follow only when all are written (`build --train` replaced the step model, then failed on the eval
    model). Returns the paths written."""
    if external_data not in (None, True, False):  # "yes" was taken as true
        raise ArchError(f"external_data takes true, false or None (past 2 GiB), got {external_data!r}")
    for model, _ in items:
        if not isinstance(model, onnx.ModelProto):  # a path: an AttributeError deep in the write
            raise ArchError(f"write_model takes an onnx.ModelProto (archdsl.compile_file(path)), got "
                            f"{type(model).__name__} {str(model)[:80]!r}")
    staged: list[Staged] = []
    try:
        for model, out in items:
            with writing(out):
                _stage(model, Path(out), external_data, staged)
        return commit_all(staged)
    finally:
        cleanup_all(staged)


def cleanup_all(staged: list[Staged]) -> None:
    """Every staged write's temp dir removed (and the folders made for one that did not commit), signals held
    until the last: a second Ctrl-C stopped the cleanup, leaving a temp dir with the replaced files' links."""
    with deferred_signals():
        _cleanup(staged)


def _cleanup(staged: list[Staged]) -> None:
    for st in staged:
        st.cleanup()
    for st in staged:  # then the folders made for them: a train step's, holding its eval model's temp dir
        st.remove_made()  # until that was removed, stayed behind


def commit_all(staged: list[Staged]) -> list[Path]:
    """Every staged file renamed into place, or none, as one act: Ctrl-C or SIGTERM waits for its end (one
    between two renames left a new .data file under the old model) and then puts back what it replaced (the
    build exits 130 as interrupted: its files must be the ones before, not the new ones), while one that comes
    after the renames, during the cleanup that follows them, is dropped (the write is done); two builds take
    turns (_commit_lock), and a rename that fails (a sticky folder, a file another user owns) puts back the files
    already replaced, so a model never meets another build's .data file or eval model."""
    written: list[Path] = []
    with _commit_lock(), deferred_signals() as held:
        try:
            for st in staged:
                with writing(st.out):
                    written += st.commit()
        except BaseException:
            for st in reversed(staged):
                st.roll_back()
            raise
        undone = bool(held)  # then raised as the block ends
        if undone:
            for st in reversed(staged):
                st.roll_back()
        else:
            for st in staged:
                st.finish()
        _cleanup(staged)  # the replaced files' links go with the temp dirs (a large .data's space is freed here)
        if not undone:
            for st in staged:
                if st.payload is None:  # a file, not a special one
                    files.remove_dead_temps(st.out)
            held.clear()  # one during finish() or the cleanup comes after the write is done: dropped
    return written


@contextlib.contextmanager
def _commit_lock():
    """The user's archdsl builds rename their files one at a time: two builds into one OUT.onnx at once (each
    renaming its .data, then its model) left one's model reading the other's weights. The lock is a file in
    the user's private cache folder (user_cache.py), held for the renames alone, and taken before signals
    wait: Ctrl-C stops a build waiting for it. (A lock on the output folder itself hung a build run under
    `flock DIR archdsl build ...`.) Without that folder (a read-only or missing home) it is in a folder of
    the user's own in the temp dir; without either (not Linux) the renames go on unlocked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with private_folder(temp_ok=True) as folder:
        fd = None
        try:
            if folder is not None and private_path(folder, "commit.lock") is not None:
                try:
                    fd = os.open("commit.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=folder)
                    fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C here raises, and the finally closes it
                except OSError:
                    pass
            yield
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock


@dataclass
class Staged:
    out: Path
    tmp: Path | None = None  # the temp dir beside `out`
    data_name: str | None = None
    payload: bytes | None = None  # a special file's bytes, written into it at commit
    made: list[Path] = field(default_factory=list)  # the folders created for it, removed again if it fails
    committed: bool = False
    replaced: list[tuple[Path, Path | bool]] = field(default_factory=list)  # (target, its old file kept, or
    # False: there was none, True: there was one that could not be kept) per rename done
    stale: Path | None = None

    def commit(self) -> list[Path]:
        self.committed = True
        if self.payload is not None:
            files.write_into(self.out, self.payload)
            return [self.out]
        written = [self.out]
        has_data = self.data_name is not None and (self.tmp / self.data_name).exists()  # none: every tensor < 1 KiB
        stale = None if has_data else _own_external_data(self.out)
        if has_data:
            parent = self.out.parent
            files.umask_mode(self.tmp / self.data_name)
            with writing(parent / self.data_name):  # its own name in the message, not the model's
                self._replace(self.tmp / self.data_name, parent / self.data_name, like=self.out)
            written.append(parent / self.data_name)
        self._replace(self.tmp / self.out.name, self.out)
        self.stale = stale  # the file being replaced kept its weights there; the new one holds its own
        return written

    def finish(self) -> None:
        """After every file of the write is in place: the replaced model's own .data file goes (not before,
        so that a rolled-back model still finds it)."""
        if self.stale is not None:
            self.stale.unlink(missing_ok=True)

    def _replace(self, new: Path, target: Path, like: Path | None = None) -> None:
        """Rename `new` over `target`, keeping the file it replaces (a hard link in the temp dir) until the
        whole write is done, for roll_back."""
        kept: Path | bool = self.tmp / f".replaced.{len(self.replaced)}"
        try:
            os.link(target, kept, follow_symlinks=False)
        except FileNotFoundError:  # nothing there: rolling back removes the new file
            kept = False
        except OSError:  # not linkable (another user's file under protected_hardlinks): it cannot come back
            kept = True
        files.replace_keeping_mode(new, target, like=like)
        self.replaced.append((target, kept))

    def roll_back(self) -> None:
        """Put back what commit replaced (a target that did not exist is removed again)."""
        for target, kept in reversed(self.replaced):
            try:
                if kept is False:
                    target.unlink(missing_ok=True)
                elif kept is not True:
                    os.replace(kept, target)
            except OSError:
                pass
        self.replaced.clear()
        self.committed = False

    def make_temp(self) -> None:
        """The folders up to the output and a temp dir beside it, made and recorded together: a Ctrl-C in
        between left empty folders behind."""
        with deferred_signals():
            self.made = files.make_parents(self.out)
            self.tmp = files.temp_dir_beside(self.out)

    def cleanup(self) -> None:
        """Through cleanup_all or commit_all, which hold signals for it (and call remove_made after every
        cleanup); once."""
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def remove_made(self) -> None:
        if not self.committed:
            files.remove_made(self.made)
            self.made = []


def _own_external_data(out: Path) -> Path | None:
    """OUT.onnx.data, where the model now at `out` keeps its weights there (an earlier build with external
    data): a self-contained build replacing it leaves that file stale (hundreds of MB, read by nothing)."""
    data = out.parent / (out.name + ".data")
    try:
        if not data.is_file() or not out.is_file():
            return None
    except OSError:  # OUT.onnx.data is too long a name where OUT.onnx is not: there is no such file
        return None
    try:
        old = onnx.load(str(out), load_external_data=False)
    except Exception:  # noqa: BLE001 - not a model: its data, if any, is not ours to judge
        return None
    for t in old.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL and \
                {e.key: e.value for e in t.external_data}.get("location") == data.name:
            return data
    return None


def _stage(model: onnx.ModelProto, out: Path, external_data: bool | None, staged: list[Staged]) -> None:
    """Write `model` beside `out` and add it to `staged`, which holds its temp dir from the moment it exists
    (so an interrupt at any point still removes it)."""
    out = files.resolved(out)
    if external_data is None:  # the threshold keeps 64 MiB for the graph: no ByteSize() walk over the weights
        external_data = not _small_enough(model)
    if files.is_special(out):  # -o /dev/null: written into, not replaced
        no_external_data_beside(out, external_data, max(_tensor_bytes(model), default=0))
        staged.append(Staged(out, payload=_serialized(model)))
        return
    parent = out.parent if str(out.parent) else Path(".")
    st = Staged(parent / out.name)
    staged.append(st)
    st.make_temp()
    if external_data:
        st.data_name = data_file_name(out)
        _save_external(model, st.tmp / out.name, st.data_name)
    else:
        (st.tmp / out.name).write_bytes(_serialized(model))


def _serialized(model: onnx.ModelProto) -> bytes:
    """The model's bytes; protobuf failing to allocate them (a train step under a memory limit) raised
    EncodeError 'Failed to serialize proto', an internal error: it is memory running out (the 2 GiB limit
    is not it: past it the weights go to external data)."""
    try:
        return model.SerializeToString(deterministic=True)
    except EncodeError:
        raise MemoryError from None


def _save_external(model: onnx.ModelProto, path: Path, data_name: str) -> None:
    """onnx.save_model(save_as_external_data=True) without its check that `data_name` does not exist
    relative to the working directory (not to the model): a second build, or any file of that name where
    the command runs, failed with 'External data file exists'."""
    from onnx import external_data_helper as ext

    from .stream import INLINE_LIMIT
    for t in model.graph.initializer:
        if t.HasField("raw_data") and len(t.raw_data) >= INLINE_LIMIT:
            ext.set_external_data(t, data_name)
    ext.write_external_data_tensors(model, str(path.parent))
    path.write_bytes(model.SerializeToString(deterministic=True))


def data_file_name(out: Path) -> str:
    """OUT.onnx.data, the name the model records for its weights' file: ONNX keeps it as UTF-8, which a name
    whose bytes are not UTF-8 cannot be (an internal error halfway through writing)."""
    name = out.name + ".data"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchError(f"cannot write external data beside {utf8(str(out))}: ONNX records the name of the data "
                        "file as UTF-8, and this file name is not; rename it") from None
    return name


def no_external_data_beside(out: Path, external_data: bool, largest: int) -> None:
    """-o /dev/stdout, a pipe: no file can go beside it. A model whose every tensor is under INLINE_LIMIT
    bytes keeps them all inline with --external-data too (no .data file), so it is written."""
    from .stream import INLINE_LIMIT
    if external_data and largest >= INLINE_LIMIT:
        raise ArchError(f"cannot write external data beside {out}: it is not a regular file, and the model's "
                        f"tensors of {INLINE_LIMIT} bytes or more would go to a .data file beside it (it is over "
                        "2 GiB, or --external-data was given)")


def _tensor_bytes(model: onnx.ModelProto) -> list[int]:
    """From dims and dtypes: reading `raw_data` would copy every tensor, ByteSize() would serialize the model."""
    import math

    from onnx import helper
    return [math.prod(t.dims) * (helper.tensor_dtype_to_np_dtype(t.data_type).itemsize if t.data_type else 4)
            for t in model.graph.initializer]


def _small_enough(model: onnx.ModelProto) -> bool:
    return sum(_tensor_bytes(model)) < EXTERNAL_DATA_THRESHOLD
