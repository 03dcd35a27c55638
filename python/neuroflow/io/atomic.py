"""Atomic file writes: readers see either the old file or the complete new one, never a part.

The data goes to a temporary file in the target's own folder (so the final ``os.replace``
is a rename within one file system, which is atomic), and is renamed over the target only
once it has been written, flushed and fsynced completely. So after a crash the target is
the old file or the complete new one; with ``sync_folder=True`` the folder is fsynced after
the rename as well, so that the new one is what survives (a second fsync per write: worth it
for checkpoints, not for a thousand images).

Temporary files are named after their target, ``.<name>.<pid>-<12 hex digits>.tmp``
(e.g. ``.model.safetensors.4711-0123456789ab.tmp``), so a file left behind by a write that
was killed (SIGKILL, power loss) can be told apart from everything else in the folder. The
next successful write of the same target removes such leftovers, and only those that are
certainly abandoned:

- the name matches this target's pattern exactly (another target's temporaries, and files
  that merely look similar, are never touched), and it is a regular file, not a link;
- it was last modified before the current write began (a write that starts later is not
  a leftover of an earlier one);
- nobody is writing it: a writer holds an exclusive ``flock`` on its temporary file from
  creation until after the rename, and the kernel drops that lock when the writer dies, so a
  leftover is one on which a non-blocking ``flock`` succeeds. A write in flight in another
  process, or in another thread of this one, keeps its lock and its file. Where locks are
  not available (Windows, a file system that refuses them) nothing is removed, except on
  Windows, where a file that another writer holds open cannot be deleted anyway.
- temporaries of older neuroflow versions (``.<name>.<12 hex digits>.tmp``, written
  without a lock) are removed only once they are an hour older than the current write.

Clean-up happens only after the new file is in place and never makes a write fail; the
target itself is only ever replaced by a complete new file. A process lists each folder once,
at its first successful write there (so that writing thousands of files into one folder does
not list it thousands of times): the leftovers it then finds are removed as their targets are
written again; one that a concurrent process leaves later is for the next process to remove.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write", "atomic_write_bytes", "temp_name_pattern"]

# Temporaries of older versions (no pid, no lock): removed only when this much older.
_LEGACY_MIN_AGE_NS = 3600 * 10**9

# Temporary files seen in each folder (by device and inode) when this process first wrote
# there, by target name; each is looked at (and removed if abandoned) at the next successful
# write of its target.
_ANY_TEMP = re.compile(r"\.(.+)\.(?:\d+-)?[0-9a-f]{12}\.tmp\Z", re.DOTALL)
_scanned: dict[tuple[int, int], dict[str, set[str]]] = {}
_scan_lock = threading.Lock()

# Temporary files this process is writing right now (a second guard next to the locks,
# for file systems where flock is emulated with per-process POSIX locks, as on NFS).
_in_flight: set[str] = set()
_in_flight_lock = threading.Lock()


def _target(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise ValueError(f"path must name a file, got {str(path)!r}")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder")
    return target


def temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names of ``name``'s temporary files: group 1 the writer's pid (None for the
    lock-less temporaries of older versions)."""
    return re.compile(rf"\.{re.escape(name)}\.(?:(\d+)-)?[0-9a-f]{{12}}\.tmp\Z")


def _lock(fd: int) -> bool:
    """Take an exclusive, non-blocking flock on ``fd``; False if held elsewhere or unsupported."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _abandoned(path: Path, pid_named: bool, started_ns: int) -> bool:
    """Whether the temporary file ``path`` is certainly not being written by anyone; if so,
    remove it (while holding its lock, so that no writer can be using it)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    age_limit = started_ns if pid_named else started_ns - _LEGACY_MIN_AGE_NS
    if st.st_mtime_ns >= age_limit:
        return False
    if fcntl is None:  # Windows: an open file cannot be deleted; the OS refuses for us
        with contextlib.suppress(OSError):
            os.unlink(path)
            return True
        return False
    try:
        # O_NONBLOCK: should the name have become a FIFO since the lstat, do not wait on it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not _lock(fd):
            return False  # a live writer holds it, or locks are unavailable: leave it
        # Still the same file under that name (not replaced since the lstat)?
        if os.fstat(fd).st_ino != st.st_ino:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def _candidates(folder: Path, name: str) -> list[str]:
    """The temporary files of target ``name`` in ``folder`` that this process has not looked
    at yet. The folder is listed once per process (at its first successful write there), so
    that writing many files into one folder stays linear; leftovers are, by their nature,
    those of processes that ended before."""
    key = os.stat(folder)
    with _scan_lock:
        seen = _scanned.get((key.st_dev, key.st_ino))
        if seen is None:
            seen = {}
            for entry in os.listdir(folder):
                m = _ANY_TEMP.match(entry)
                if m is not None:
                    seen.setdefault(m.group(1), set()).add(entry)
            _scanned[(key.st_dev, key.st_ino)] = seen
        return sorted(seen.pop(name, ()))


def _remove_stale(target: Path, own: Path, started_ns: int) -> list[Path]:
    """Remove the abandoned temporaries of ``target`` (see the module doc); never raises."""
    pattern = temp_name_pattern(target.name)
    removed: list[Path] = []
    try:
        names = _candidates(target.parent, target.name)
    except OSError:
        return removed
    if not names:
        return removed
    with _in_flight_lock:
        busy = set(_in_flight)
    for name in names:
        m = pattern.match(name)
        if m is None or name == own.name:
            continue
        path = target.parent / name
        if str(path) in busy:
            continue
        try:
            if _abandoned(path, m.group(1) is not None, started_ns):
                removed.append(path)
        except OSError:
            pass
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); silently skipped where unsupported."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, sync_folder: bool = False) -> Iterator[BinaryIO]:
    """Open a binary file for writing that replaces ``path`` only when the block succeeds.

    If the block raises, the temporary file is removed and ``path`` is left untouched.
    Returns (through ``with ... as f``) the open temporary file. ``sync_folder``: fsync the
    folder after the rename, so that a crash cannot undo it. After a successful write,
    temporary files that earlier, killed writes of the same ``path`` left behind are removed
    (see the module doc for which ones count as abandoned).
    """
    target = _target(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    # os.open with mode 0o666 lets the umask apply, so the final file gets the same
    # permissions as an ordinary open(path, "wb") would give it (mkstemp would force 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with _in_flight_lock:
        _in_flight.add(str(tmp))
    try:
        _lock(fd)  # held until the file is renamed (or removed); dropped by the kernel if we die
        started_ns = os.fstat(fd).st_mtime_ns  # the file system's clock, as the leftovers' mtimes
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        _forget(tmp, remove=True)
        raise
    try:
        with f:
            try:
                yield f
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                _name_the_target(e, target)
                raise
            if os.name == "nt":  # Windows cannot rename a file that is open
                f.close()
            os.replace(tmp, target)  # on POSIX with the lock still held: see _abandoned
    except BaseException:
        _forget(tmp, remove=True)
        raise
    _forget(tmp, remove=False)
    if sync_folder:
        _fsync_dir(target.parent)
    _remove_stale(target, tmp, started_ns)


# Errors of writing data, which say nothing of where: the target's name is added to them.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EIO, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _name_the_target(e: OSError, target: Path) -> None:
    """Give a nameless write error (a full disk: ENOSPC from write, flush or fsync) the
    target's name, so that the message says which file could not be written."""
    if e.filename is None and e.errno in _WRITE_ERRNOS:
        with contextlib.suppress(AttributeError, TypeError):
            e.filename = str(target)


def _forget(tmp: Path, *, remove: bool) -> None:
    with _in_flight_lock:
        _in_flight.discard(str(tmp))
    if remove:
        with contextlib.suppress(OSError):  # never hide the error that got us here
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, sync_folder: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and return the path (``sync_folder``: see
    :func:`atomic_write`)."""
    with atomic_write(path, sync_folder=sync_folder) as f:
        f.write(data)
    return Path(path)
