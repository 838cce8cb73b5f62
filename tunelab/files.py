"""Writing a run's files without losing them: atomic writes, and one writer per run folder.

A file that matters is written to a temporary file beside it, then renamed over it (``os.replace``): a Ctrl-C, a
crash or a full disk mid-write leaves the old file whole, and a reader sees the old file or the new one.

A command that writes a run folder (search, resume, retrain, report) holds an exclusive ``flock`` on its ``.lock``
file, which names the holder for the message a second command gets. The operating system releases a ``flock`` when
its process dies, so the lock file of a process that is gone is simply taken over.
"""

import contextlib
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from tunelab.errors import UserError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; it replaces ``path`` once the block succeeds, and is
    removed if the block fails."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        with open(temporary, "rb") as written:  # on the disk before the rename makes it the file
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def writable(folder: Path, what: str = "results folder") -> Path:
    """``folder``, made if need be; a UserError naming it where it cannot be made or written in, checked before the
    work whose files go there (``what``: the folder in words)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only parent, or a file where a folder belongs
        raise UserError(f"{folder}: cannot make the {what}: {e.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"{folder}: cannot write in the {what}: no permission")
    return folder


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8) to ``path`` atomically."""
    with replacing(path) as temporary:
        temporary.write_bytes(content.encode() if isinstance(content, str) else content)


@contextlib.contextmanager
def locked(folder: Path, command: str) -> Iterator[None]:
    """Hold ``folder`` for ``command`` (e.g. "tunelab search"), creating it if need be; a UserError if another
    process holds it. The folders this call created (the results root too) are removed again if nothing else was
    written to them."""
    created = [f for f in (folder, *folder.parents) if not f.exists()]
    path = folder / LOCK_FILE
    try:
        fd = _lock(path)
    except OSError as e:
        raise UserError(f"cannot write the results folder {folder}: {e.strerror}") from None
    try:
        holder = {"pid": os.getpid(), "command": command, "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "host": socket.gethostname()}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # before the lock is released: see _lock
        os.close(fd)
        for made in created:  # deepest first
            with contextlib.suppress(OSError):  # not empty: the command wrote something
                made.rmdir()


def _lock(path: Path) -> int:
    """An open descriptor of ``path`` holding its lock. A holder deletes the file before releasing the lock, so a
    lock taken on a file that is no longer at ``path`` is taken again on the new one."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{path.parent} is in use by {_holder(path)}; wait for it or stop it") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (a holder that has only just taken it may not have written it yet)."""
    try:
        holder = json.loads(path.read_text())
        where = f" on {holder['host']}" if holder["host"] != socket.gethostname() else ""
        return f"PID {holder['pid']}{where} ({holder['command']}, since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
