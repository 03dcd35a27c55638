"""neuroflow.io.atomic: temporaries are named after their target, and the leftovers of killed
writes -- only those -- are removed by the next successful write of the same target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import neuroflow as nf
from neuroflow.io import atomic
from neuroflow.io.atomic import atomic_write, atomic_write_bytes, temp_name_pattern

HERE = str(Path(nf.__file__).resolve().parent.parent)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")])}
posix_only = pytest.mark.skipif(os.name == "nt", reason="flock and SIGKILL are POSIX")

# A child that starts an atomic write of argv[1], writes half, says "ready" and then waits:
# for "finish" (completes the write) or to be killed.
WRITER = textwrap.dedent("""
    import sys
    from neuroflow.io.atomic import atomic_write
    with atomic_write(sys.argv[1]) as f:
        f.write(sys.argv[2].encode())
        f.flush()
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "finish":
            raise SystemExit(3)
        f.write(b"+done")
""")


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _start_writer(target: Path, payload: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), payload], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=ENV)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _age(path: Path, seconds: float) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_temp_names_are_recognisable_per_target(tmp_path: Path) -> None:
    seen: list[str] = []
    with atomic_write(tmp_path / "m.safetensors") as f:
        seen = _temps(tmp_path)
        f.write(b"x")
    assert len(seen) == 1
    m = temp_name_pattern("m.safetensors").match(seen[0])
    assert m is not None and m.group(1) == str(os.getpid())
    pat = temp_name_pattern("a")
    assert pat.match(".a.12-0123456789ab.tmp") and pat.match(".a.0123456789ab.tmp")
    # another target's temporaries, and look-alikes, are not "a"'s
    for other in [".a.5.12-0123456789ab.tmp", ".ab.12-0123456789ab.tmp", ".a.12-0123456789ab.tmp.x",
                  "a.12-0123456789ab.tmp", ".a.12-0123456789AB.tmp", ".a.x-0123456789ab.tmp", ".a..tmp"]:
        assert not pat.match(other), other
    assert temp_name_pattern("a.5").match(".a.5.12-0123456789ab.tmp")
    assert not temp_name_pattern("a+b").match(".aab.1-0123456789ab.tmp")  # the name is escaped


@posix_only
def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(b"good old")  # (this process has not written here yet: see below)
    child = _start_writer(target, "half a new fi")
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    left = _temps(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".ckpt.safetensors.{child.pid}-")
    assert target.read_bytes() == b"good old"  # the kill lost nothing
    time.sleep(0.02)  # coarse file-system clocks: the leftover is strictly older than the next write
    atomic_write_bytes(target, b"good new")
    assert _temps(tmp_path) == [] and target.read_bytes() == b"good new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]


@posix_only
def test_a_write_in_flight_elsewhere_is_never_removed(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.safetensors"
    child = _start_writer(target, "theirs")
    try:
        (theirs,) = _temps(tmp_path)
        _age(tmp_path / theirs, 3600)  # older than our write: only its lock says it is alive
        atomic_write_bytes(target, b"ours")
        assert _temps(tmp_path) == [theirs] and target.read_bytes() == b"ours"
        child.communicate("finish\n", timeout=30)
        assert child.returncode == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert target.read_bytes() == b"theirs+done" and _temps(tmp_path) == []


def test_a_write_in_flight_in_another_thread_is_never_removed(tmp_path: Path) -> None:
    target = tmp_path / "t.bin"
    started, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with atomic_write(target) as f:
                f.write(b"slow")
                started.set()
                go.wait(30)
                f.write(b"+done")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert started.wait(30)
    (theirs,) = _temps(tmp_path)
    _age(tmp_path / theirs, 3600)
    atomic_write_bytes(target, b"fast")
    assert _temps(tmp_path) == [theirs]
    go.set()
    t.join(30)
    assert not errors and target.read_bytes() == b"slow+done" and _temps(tmp_path) == []


@posix_only
def test_only_this_targets_abandoned_temporaries_go(tmp_path: Path) -> None:
    target = tmp_path / "a"
    keep = {
        ".b.1-0123456789ab.tmp": b"another target's leftover",
        ".a.5.1-0123456789ab.tmp": b"the leftover of target 'a.5'",
        "a.1-0123456789ab.tmp": b"not hidden: not ours",
        ".a.1-0123456789ab.tmp.bak": b"a look-alike",
        ".a.0123456789ab.tmp": b"an old-style leftover, but recent",
    }
    stale = {".a.1-aaaaaaaaaaaa.tmp": b"a killed write", ".a.bbbbbbbbbbbb.tmp": b"an old-style leftover, 2 h old"}
    for name, data in {**keep, **stale}.items():
        (tmp_path / name).write_bytes(data)
        _age(tmp_path / name, 7200 if name == ".a.bbbbbbbbbbbb.tmp" else 5)
    (tmp_path / ".a.2-cccccccccccc.tmp").mkdir()  # a folder with a matching name: not a temporary
    (tmp_path / ".a.3-dddddddddddd.tmp").symlink_to(tmp_path / ".b.1-0123456789ab.tmp")
    os.utime(tmp_path / ".a.3-dddddddddddd.tmp", ns=(0, 0), follow_symlinks=False)
    atomic_write_bytes(target, b"new")
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"a", *keep, ".a.2-cccccccccccc.tmp", ".a.3-dddddddddddd.tmp"}
    for name, data in keep.items():
        assert (tmp_path / name).read_bytes() == data


def test_a_failed_write_removes_its_temporary_and_keeps_the_rest(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    atomic_write_bytes(target, b"good")
    leftover = tmp_path / ".m.bin.1-0123456789ab.tmp"
    leftover.write_bytes(b"abandoned")
    _age(leftover, 5)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as f:
            f.write(b"bad")
            raise RuntimeError("boom")
    # a failed write changes nothing: the target stays, and so does the leftover
    assert target.read_bytes() == b"good" and _temps(tmp_path) == [leftover.name]


def test_clean_up_never_fails_a_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leftover = tmp_path / ".m.bin.1-0123456789ab.tmp"
    leftover.write_bytes(b"abandoned")
    _age(leftover, 5)

    def no_listing(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(atomic.os, "listdir", no_listing)
    atomic_write_bytes(tmp_path / "m.bin", b"fine")
    assert (tmp_path / "m.bin").read_bytes() == b"fine" and leftover.exists()


def test_without_locks_this_process_still_knows_its_own_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As where flock is missing or per process (NFS): the in-flight registry protects the
    # temporary of a write another thread has in flight; a real leftover still goes.
    monkeypatch.setattr(atomic, "fcntl", None)
    target = tmp_path / "t.bin"
    leftover = tmp_path / ".t.bin.1-0123456789ab.tmp"
    leftover.write_bytes(b"abandoned")
    _age(leftover, 5)
    with atomic_write(target) as f:
        f.write(b"slow")
        (theirs,) = [n for n in _temps(tmp_path) if n != leftover.name]
        _age(tmp_path / theirs, 3600)
        atomic_write_bytes(target, b"fast")
        assert _temps(tmp_path) == [theirs]
    assert target.read_bytes() == b"slow" and _temps(tmp_path) == []


def test_each_folder_is_listed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Writing n files into one folder must not list it n times (quadratic in n).
    leftover = tmp_path / ".f7.bin.1-0123456789ab.tmp"
    leftover.write_bytes(b"abandoned")
    _age(leftover, 5)
    listed = []
    real = os.listdir
    monkeypatch.setattr(atomic.os, "listdir", lambda p: listed.append(p) or real(p))
    for i in range(50):
        atomic_write_bytes(tmp_path / f"f{i}.bin", b"data")
    assert len(listed) == 1
    assert not leftover.exists()  # found by that one listing, removed when f7.bin was written
    assert _temps(tmp_path) == []


@posix_only
def test_the_next_process_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    # This process wrote into the folder before the kill, so it already listed it; the
    # leftover is for the next process -- as when a killed training run is resumed.
    target = tmp_path / "ckpt.safetensors"
    atomic_write_bytes(target, b"good old")
    child = _start_writer(target, "half")
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert len(_temps(tmp_path)) == 1
    time.sleep(0.02)
    code = "import sys; from neuroflow.io.atomic import atomic_write_bytes; atomic_write_bytes(sys.argv[1], b'resumed')"
    subprocess.run([sys.executable, "-c", code, str(target)], check=True, env=ENV, timeout=60)
    assert _temps(tmp_path) == [] and target.read_bytes() == b"resumed"


def test_the_folder_is_synced_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_mode) or real(fd))
    atomic_write_bytes(tmp_path / "a.bin", b"1")
    assert len(synced) == 1  # the data
    atomic_write_bytes(tmp_path / "a.bin", b"2", sync_folder=True)
    import stat

    assert len(synced) == 3 and stat.S_ISDIR(synced[2])  # the data, then the folder
    assert (tmp_path / "a.bin").read_bytes() == b"2"
