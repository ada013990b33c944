"""The user's own cache folder, ~/.cache/archdsl (or $XDG_CACHE_HOME/archdsl): the parser's tables and the
lock that makes one build's renames wait for another's. Opened, not named: a check of a path followed by
an open of the same path let another user who could write a folder above it swap in one of their own in
between (and the parser's cache is a pickle). The folder is opened once, checked on the open handle (this
user's, writable by no one else), and reached through /proc/self/fd/N, which names that very folder
whatever is renamed meanwhile. Where the home has none (read-only, missing), the lock (not the cache) goes in
the same kind of folder in the temp dir. Linux only: elsewhere there is no cache and no lock. Depends on
nothing."""

from __future__ import annotations

import contextlib
import os
import stat

__all__ = ["private_folder", "private_path"]


@contextlib.contextmanager
def private_folder(temp_ok: bool = False):
    """The cache folder's file descriptor, made if need be, or None where there is none to trust. `temp_ok`:
    else a folder of this user's own in the temp dir (for a lock, which reads nothing from its folder; never
    for the parser's pickle), so that a read-only or missing home still has one."""
    linux = hasattr(os, "getuid") and os.path.isdir("/proc/self/fd")
    fd = _open() if linux else None
    if fd is None and temp_ok and linux:
        fd = _open_temp()
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def private_path(fd: int, name: str) -> str | None:
    """A path to `name` in the folder open as `fd` that reaches that folder whatever its name now holds; None
    where `name` is there and not a regular file of this user's (a link: only this user can put one there,
    but a tool of theirs may have)."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return f"/proc/self/fd/{fd}/{name}"


def _open() -> int | None:
    uid = os.getuid()
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):  # no HOME and no passwd entry: "~" itself, a folder named ~ in the cwd
            return None
        base = os.path.join(home, ".cache")
    flags = os.O_RDONLY | os.O_DIRECTORY
    try:
        try:
            top = os.open(base, flags)
        except FileNotFoundError:
            if os.stat(os.path.dirname(base)).st_uid != uid:  # nothing made in another user's home (sudo -E)
                return None
            with contextlib.suppress(FileExistsError):  # another process made it just now
                os.mkdir(base, 0o700)
            top = os.open(base, flags)
        try:
            return _own_folder(top, "archdsl", os.fstat(top).st_uid == uid)
        finally:
            os.close(top)
    except OSError:  # a read-only home, a file where the folder goes, a link: no cache
        return None


def _open_temp() -> int | None:
    """archdsl-UID in the temp dir: one another user made first is not this user's, and is refused."""
    import tempfile
    try:
        top = os.open(tempfile.gettempdir(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            return _own_folder(top, f"archdsl-{os.getuid()}", True)
        finally:
            os.close(top)
    except OSError:
        return None


def _own_folder(top: int, name: str, may_make: bool) -> int | None:
    """`name` in the folder open as `top`, made (0700) if missing and `may_make`; None unless it is a folder of
    this user's that no one else may write. Raises OSError."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(name, flags, dir_fd=top)
    except FileNotFoundError:
        if not may_make:
            return None
        with contextlib.suppress(FileExistsError):  # another process made it just now
            os.mkdir(name, 0o700, dir_fd=top)
        fd = os.open(name, flags, dir_fd=top)
    st = os.fstat(fd)
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        os.close(fd)
        return None
    return fd
