"""One writer per store: a lock file inside the store directory (private).

``simulate_ensemble`` holds ``<store>/.flowsim-writer.lock`` while it writes. The file names the
owner (pid, host, start time); it is created atomically (written under a temporary
name, then hard-linked into place, which fails if a lock exists), removed when the writer ends
(also on an exception), and taken over when its owner is a dead process on this host (a writer
killed with SIGKILL). Remote (fsspec) stores are not locked.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ._io import StorePath

__all__ = ["LOCK_NAME", "StoreLock"]

LOCK_NAME = ".flowsim-writer.lock"


def _alive(pid: Any) -> bool:
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class StoreLock:
    """The writer lock of one local store; ``acquire`` / ``release`` or use as a context manager."""

    def __init__(self, where: StorePath) -> None:
        self.where = where
        self.held: Path | None = None
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "token": uuid.uuid4().hex}

    def taken(self) -> bool:
        """Whether a writer's lock file is in the store (local stores; its owner may be dead)."""
        return self.where.is_local and (Path(self.where.url) / LOCK_NAME).exists()

    def acquire(self, directory: str | None = None) -> None:
        """Take the lock in ``directory`` (default: the store); :class:`~flowsim.StoreError` if
        another live process holds it."""
        if not self.where.is_local:
            return
        if not os.path.isdir(directory or self.where.url):
            return  # not a store directory (a file to be replaced): nothing to lock
        lock = Path(directory or self.where.url) / LOCK_NAME
        for _ in range(5):
            tmp = lock.with_name(f"{LOCK_NAME}.{self.owner['token']}")
            try:
                tmp.write_text(json.dumps(self.owner))
                if self._create(tmp, lock):
                    self.held = lock
                    return
            except OSError as err:
                raise StoreError(f"cannot create the writer lock {lock}: {err}") from err
            finally:
                tmp.unlink(missing_ok=True)
            other = self._read(lock)
            if other is None:  # vanished meanwhile, or half-written by a killed writer long ago
                continue
            if other.get("host") == self.owner["host"] and not _alive(other.get("pid", -1)):
                self._break(lock, other)  # a writer that died: take over
                continue
            raise StoreError(
                f"{self.where.url} is being written by another process (pid {other.get('pid')} on "
                f"{other.get('host')}, since {other.get('started')}); wait for it to finish, or "
                f"write to another path. If that process is gone, delete {lock}")
        raise StoreError(f"could not take the writer lock {lock}; another process keeps taking it")

    def _create(self, tmp: Path, lock: Path) -> bool:
        """Put the lock file in place unless one exists: a hard link of the written ``tmp``
        (atomic, whole), or an exclusive create where the file system has no hard links."""
        try:
            os.link(tmp, lock)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            pass
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.owner))
        return True

    @staticmethod
    def _read(lock: Path) -> dict[str, Any] | None:
        try:
            other = json.loads(lock.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            other = {}
        if not isinstance(other, dict) or "pid" not in other:
            try:  # unreadable: stale once older than a minute (writing it takes microseconds)
                return {"pid": -1, "host": socket.gethostname()} if time.time() - lock.stat().st_mtime > 60 \
                    else {"pid": "?", "host": "?", "started": "?"}
            except FileNotFoundError:
                return None
        return other

    def _break(self, lock: Path, stale: dict[str, Any]) -> None:
        """Remove a dead writer's lock (renamed first, so two processes cannot both remove it)."""
        grave = lock.with_name(f"{LOCK_NAME}.stale-{self.owner['token']}")
        try:
            os.rename(lock, grave)
        except FileNotFoundError:
            return
        again = self._read(grave) or {}
        if again.get("token") != stale.get("token"):  # a live lock was moved: put it back
            try:
                os.link(grave, lock)
            except OSError:
                pass
            grave.unlink(missing_ok=True)
            raise StoreError(f"{self.where.url}: another process took the writer lock meanwhile; "
                             "wait for it to finish, or write to another path")
        grave.unlink(missing_ok=True)

    def moved_to(self, directory: str) -> None:
        """The store directory holding the lock was renamed to ``directory``."""
        if self.held is not None:
            self.held = Path(directory) / LOCK_NAME

    def release(self) -> None:
        """Remove the lock if this object holds it."""
        if self.held is None:
            return
        other = self._read(self.held)
        if other is not None and other.get("token") == self.owner["token"]:
            self.held.unlink(missing_ok=True)
        self.held = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
