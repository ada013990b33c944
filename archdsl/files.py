"""Output files: which paths a command may write, and how a finished file takes its place.

Writers build a file under a temporary name and then rename it over the target, so an interrupted write
leaves the previous file. Two things that rename must not do: replace a file the same command reads (a spec
built with `-o` pointing at itself, training data given as the checkpoint), and replace something that is
not a regular file (`-o /dev/null` would become an empty file in /dev; a symlink would stop pointing at
its target)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import zlib
from pathlib import Path

from .diagnostics import ArchError, not_a_directory, writing
from .interrupts import deferred_signals, fd_open, inherited_fds

__all__ = ["specs_dir", "refuse_overwriting", "is_special", "resolved", "copy_into", "umask_mode", "atomic_write",
           "make_parents", "remove_made", "replace_keeping_mode", "temp_dir_beside", "remove_dead_temps", "std_stream",
           "fd_named", "open_special", "write_into"]


def specs_dir() -> Path:
    """The architecture library (specs/): inside the package when installed (the wheel carries it, as the
    grammar), beside it in a checkout."""
    here = Path(__file__).resolve().parent
    return here / "specs" if (here / "specs").is_dir() else here.parent / "specs"


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet: compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def _uninherited_fd(path: str | Path) -> int | None:
    """The N of a path /dev/fd/N the command did not start with: the command line's N is then a library's own
    descriptor (onnxruntime's cache database, opened after: review83-85 hunts). None for any other path, and
    from the Python API (which notes no descriptors)."""
    fd, known = fd_named(path), inherited_fds()
    return fd if fd is not None and fd > 2 and known is not None and fd not in known else None


def _refuse_unopened(out: Path) -> None:
    """An output /dev/fd/N the command did not start with."""
    if (fd := _uninherited_fd(out)) is not None:
        raise ArchError(f"cannot write {out}: descriptor {fd} was not open when archdsl started (give the shell's "
                        f"{fd}>FILE, or a file path)")


def _on_fd(fd: int, path: Path) -> bool:
    """Whether descriptor fd is open on the file at path."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def refuse_overwriting(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """A diagnostic, before any work, when an output is a directory, one of the inputs, or the same file as
    another output (so no output is written while another is refused). Keys say where each path came from
    (`-o`, `--data`, ...)."""
    outs = [(flag, Path(p)) for flag, p in outputs.items() if p is not None]
    ins = [(flag, Path(p)) for flag, p in inputs.items() if p is not None]
    for flag, out in outs:
        not_a_directory(out)
    for i, (flag, out) in enumerate(outs):
        _refuse_unopened(out)
        fd = std_stream(out)
        what = next((w for w, path in ins if _on_fd(fd, path)), None) if fd is not None else None
        if what is not None:  # -o /dev/fd/3 3>>spec.arch (review83)
            raise ArchError(f"{flag} {out} is open on the {what} file: writing it would destroy the input; "
                            "choose another output")
        if is_special(out):
            continue  # /dev/null may be given twice, and is nobody's input worth keeping
        for what, path in ins:
            if _same(out, path):
                raise ArchError(f"{flag} {out} is the {what} file: writing it would destroy the input; "
                                "choose another output")
        for other, path in outs[i + 1:]:
            if _same(out, path):
                raise ArchError(f"{flag} and {other} are one file ({out}): give them different paths")


def std_stream(path: str | Path) -> int | None:
    """The descriptor `path` names, open in this process (-o -, /dev/stdout, /dev/fd/3, /proc/self/fd/1): written
    through it, whatever it is open on. Opened anew by its name, a file stdout went to was truncated (`-o - >>
    log` lost the log) or, followed to its name, replaced by a rename (cli5 hunt; /dev/fd/3: review82)."""
    fd = fd_named(path)
    return fd if fd is not None and fd_open(fd) else None


def fd_named(path: str | Path) -> int | None:
    """The descriptor number a path names (-, /dev/stdout, /dev/fd/3, /proc/self/fd/3), open or not."""
    if str(path) == "-":
        return 1
    try:
        norm = "/" + os.path.abspath(path).lstrip("/")
    except OSError:  # a relative path where the working directory is gone: no stream
        return None
    if norm in ("/dev/stdout", "/dev/stderr"):
        return 1 if norm == "/dev/stdout" else 2
    m = re.fullmatch(rf"/(?:dev/fd|proc/(?:self|{os.getpid()})/fd)/(\d+)", norm)  # any descriptor: 3>>log too
    return int(m[1]) if m else None


def open_special(path: str | Path):
    """A special target opened to write into: stdout or stderr through its descriptor (std_stream), what it is
    open on kept as it is; anything else opened by its name."""
    fd = std_stream(path)
    if fd is None:
        return open(path, "wb")  # noqa: SIM115 - the caller's with closes it
    if fd in (1, 2):
        (sys.stdout if fd == 1 else sys.stderr).flush()  # text printed before goes first
    return os.fdopen(fd, "wb", closefd=False)


def write_into(path: str | Path, data: bytes) -> None:
    """A special target's bytes (open_special)."""
    with open_special(path) as f:
        f.write(data)


def is_special(path: str | Path) -> bool:
    """An existing target that is not a regular file (a device, a FIFO), or an open descriptor by its name
    (std_stream: stdout, /dev/fd/3): written into, never replaced."""
    return std_stream(path) is not None or _special_file(path)


def _special_file(path: str | Path) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def refuse_special(path: str | Path, said: str) -> None:
    """A pipe or a device where a file of arrays should be: numpy waited for a writer forever. `said` begins
    the message (`cannot read weights from w.npz`). /dev/fd/5 open on a regular file reads as that file; one
    the command did not start with would read a library's own file (onnxruntime's database: review85 hunt)."""
    if (fd := _uninherited_fd(path)) is not None:
        raise ArchError(f"{said}: descriptor {fd} was not open when archdsl started (give the shell's {fd}<FILE, or "
                        "a file path)")
    if _special_file(path):
        raise ArchError(f"{said}: not a regular file (a pipe or a device)")


def resolved(path: str | Path) -> Path:
    """Where a write to `path` lands: a symlink's target (its link stays), else the path itself. A link to a
    special file stays as given: /dev/stdout on a pipe resolves to /proc/PID/fd/pipe:[N], which no open()
    finds, while the link itself opens the pipe."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() and not is_special(p) else p


def umask_mode(path: Path) -> None:
    """The mode a plain open() would give (0666 less the umask), for files a library creates 0600 (onnx's
    external data, safetensors), so they match the files written beside them."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def make_parents(path: Path) -> list[Path]:
    """The missing folders above `path`, created; returned (innermost first) so that a write that fails can
    take them away again with remove_made: a failed build or an interrupt left empty folders behind."""
    made: list[Path] = []
    try:
        for folder in reversed(path.parents):  # outermost first, each one made here or already there
            try:
                os.mkdir(folder)
            except OSError:
                if folder.is_dir():  # there already (EEXIST, or a read-only file system saying so its own way)
                    continue
                if folder.exists():  # -o afile/m.onnx: "File exists" said nothing of what was wrong
                    raise ArchError(f"cannot write {path}: {folder} is a file, not a directory") from None
                _refuse_dangling(path, folder)
                raise
            made.append(folder)  # only what this call made: nothere/../keep never names the user's keep
    except BaseException:  # a later folder failed: the ones made so far go again
        remove_made(made[::-1])
        raise
    return made[::-1]


def remove_made(folders: list[Path]) -> None:
    """Remove the folders make_parents created, innermost first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:  # none there yet (or unreadable): the new file keeps the mode it was made with
        return None


def replace_keeping_mode(tmp: Path, path: Path, like: Path | None = None) -> None:
    """os.replace(tmp, path), the file replaced lending its permission bits to the new one: a rebuild over a
    private (0600) or read-only file gave it the umask's 0644. Where none is replaced, `like` lends them (a
    model's new weights file takes the mode of the model it belongs to)."""
    mode = _mode(path) or (_mode(like) if like is not None else None)
    if mode is not None and stat.S_ISREG(mode):
        os.chmod(tmp, stat.S_IMODE(mode))
    os.replace(tmp, path)


def copy_into(src: Path, dst: Path) -> None:
    """A finished file's bytes written into a special target (shutil.copyfile refuses FIFOs); stdout or stderr
    through its descriptor (std_stream)."""
    with open(src, "rb") as f, open_special(dst) as g:
        shutil.copyfileobj(f, g, 1 << 20)


def temp_dir_beside(path: Path) -> Path:
    """A fresh hidden directory next to `path` (same file system: the finished file is renamed out of it),
    named after it and after the process that makes it (remove_dead_temps); the name is cut so that a
    255-byte one still leaves room for the rest."""
    return Path(tempfile.mkdtemp(prefix=f".{_kept(path.name)}.{_owner_tag()}", dir=path.parent))


def _kept(name: str) -> str:
    """The output's name cut to 206 bytes: room for the dots, the longest owner tag (39) and mkdtemp's 8; at
    a character's end (half a character's bytes made a name onnx's external-data writer refused), as the file
    system's encoding reads those bytes (as UTF-8 text 'é' was an internal error where it is ASCII: cli4 hunt)."""
    return os.fsdecode(os.fsencode(name)[:206].decode("utf-8", "ignore").encode("utf-8"))


_TAG = re.compile(r"a([0-9a-f]{8})-(\d+)-(\d+)-[^.]{8}\Z")  # host, pid, start time, mkdtemp's random part


def _proc_start(pid: int | str) -> str | None:
    """The process's start time (clock ticks after boot), which a later process given the same pid differs
    in; None where there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _host() -> str | None:
    """This kernel's boot and pid namespace, hashed: a pid means the same process only where both match (a
    folder shared by containers or hosts holds temp dirs whose pids are not ours to look up). None where /proc
    is not this pid namespace's (`unshare --pid` without --mount-proc: /proc/PID is another process there)."""
    try:
        if int(os.readlink("/proc/self")) != os.getpid():
            return None
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = f.read().strip()
        return f"{zlib.crc32(boot + os.readlink('/proc/self/ns/pid').encode()):08x}"
    except (OSError, ValueError):  # not Linux
        return None


def _owner_tag() -> str:
    host, start = _host(), _proc_start("self")
    return "" if host is None or start is None else f"a{host}-{os.getpid()}-{start}-"


def remove_dead_temps(path: Path) -> None:
    """Remove the temp dirs beside `path` that builds of it killed outright (SIGKILL, the OOM killer) left:
    a hidden copy of a model, often GBs. Called once a later build of the same output has put its files in
    place (until then such a dir may hold the only matching model and .data pair). Only dirs whose process
    is known gone are removed: made on this host and pid namespace, by a pid that is no longer running (or
    now runs another process)."""
    host = _host()
    if host is None:
        return
    prefix = f".{_kept(path.name)}."
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    for e in entries:
        m = _TAG.match(e.name, len(prefix))
        if m is None or m[1] != host or _proc_start(m[2]) == m[3] or not e.is_dir(follow_symlinks=False):
            continue
        shutil.rmtree(e.path, ignore_errors=True)


def _refuse_dangling(path: Path, folder: Path) -> None:
    """A folder above an output that is a symbolic link to nowhere (or a loop of links)."""
    if os.path.lexists(folder) and not folder.exists():
        raise ArchError(f"cannot write {path}: {folder} is a symbolic link to {os.readlink(folder)}, which does not "
                        "exist (or a loop of links)")


def probe_writable(path: str | Path) -> None:
    """Refuse now an output the OS will not let us write (-o /proc/w.npz), rather than after an epoch of
    training: a temp directory is made and removed in the nearest existing folder above it (creating
    none of the missing ones)."""
    path = resolved(path)
    if is_special(path):
        return
    with writing(path):
        up = next((p for p in path.parents if p.exists()), None)
        for p in path.parents:  # a link to nowhere above it: "File exists" after an epoch of training (cli5 hunt)
            if p == up:
                break
            _refuse_dangling(path, p)
        if up is not None:
            with deferred_signals():  # Ctrl-C between the two left the probe's folder
                os.rmdir(tempfile.mkdtemp(prefix=".archdsl-probe.", dir=up))
        _refuse_sticky_replace(path)


def _refuse_sticky_replace(path: Path) -> None:
    """In a sticky folder (/tmp) only a file's owner, the folder's or one holding CAP_FOWNER over the file may
    replace it: the probe's temp folder is made there all the same, and the rename at the end failed after
    every epoch of training. The kernel is asked, by setting the file's own times again, which it allows to
    exactly those (its own mode again could drop a setgid bit). Uids alone cannot tell: root in a user
    namespace holds that capability over the users it maps and not over the others, which it sees as 65534,
    as it sees a mapped nobody."""
    try:
        mine, folder = path.lstat(), path.parent.stat()
    except OSError:  # nothing there yet (or unreadable: the write says why)
        return
    if not folder.st_mode & stat.S_ISVTX or os.geteuid() in (mine.st_uid, folder.st_uid) or stat.S_ISLNK(mine.st_mode):
        return
    if not _may_set_times(path, mine):
        raise PermissionError(errno.EPERM, "it belongs to another user and its folder is sticky (only the owner "
                              "may replace it); give another name")


def _may_set_times(path: Path, st: os.stat_result) -> bool:
    try:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    except PermissionError:
        return False
    except OSError:  # a read-only file system: the write says so
        pass
    return True


def atomic_write(path: str | Path, save) -> None:
    """save(tmp) writes a file of `path`'s name (save_weights picks the format by its suffix) in a temp
    directory beside it, which then replaces `path`: an interrupted write leaves the previous file. A
    special file (-o /dev/null) is written into instead, from a temp directory elsewhere."""
    path = resolved(path)
    special = is_special(path)
    tmp_dir = None
    made: list[Path] = []
    done = False
    try:
        with writing(path):
            if not special:
                made = make_parents(path)
            with deferred_signals():  # made and known together: Ctrl-C in between left an empty hidden folder
                tmp_dir = Path(tempfile.mkdtemp()) if special else temp_dir_beside(path)
            save(tmp_dir / path.name)
            if special:
                copy_into(tmp_dir / path.name, path)
            else:
                replace_keeping_mode(tmp_dir / path.name, path)
                remove_dead_temps(path)
            done = True
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        if not done:
            remove_made(made)
