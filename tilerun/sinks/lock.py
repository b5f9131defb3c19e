"""One writer per output: a lock file that a crashed run cannot leave stuck forever.

The lock is ``<store>/tilerun.lock`` (JSON: pid, host, start time), created with ``O_EXCL`` and
touched every :data:`HEARTBEAT_S` seconds by a daemon thread while the run lives. A lock whose
heartbeat is older than :data:`STALE_S`, or whose process is gone on this host, is stale: a new
run takes it over. A live one makes a second run fail with a message naming its holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

from tilerun.errors import OutputError

LOCK_NAME = "tilerun.lock"
HEARTBEAT_S = 5.0
STALE_S = 60.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive, heart-beating lock on a store folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict[str, object] | None:
        """The live holder's record, or None when unlocked or stale."""
        found = self._read()
        return found[1] if found is not None and self._live(*found[1:]) else None

    def _read(self) -> tuple[str, dict[str, object], float] | None:
        """The lock file's text, record (empty if unreadable) and age; None if there is none."""
        try:
            text = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            record = {}
        return text, record if isinstance(record, dict) else {}, age

    @staticmethod
    def _live(record: dict[str, object], age: float) -> bool:
        """Fresh, and (on this host) its process still runs. An unreadable record counts as
        live until it is stale: it is not ours to judge."""
        if age > STALE_S:
            return False
        pid = record.get("pid")
        return record.get("host") != socket.gethostname() or not isinstance(pid, int) or \
            _alive(pid)

    def acquire(self, subject: object) -> None:
        found = self._read()
        if found is not None:
            text, record, age = found
            if self._live(record, age):
                raise OutputError(
                    subject,
                    f"another run is writing it (pid {record.get('pid')} on "
                    f"{record.get('host')}, since {record.get('started')}); wait for it, or "
                    "stop it and pass --resume",
                )
            self._take_over(text, subject)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            self._create(json.dumps(record))
        except FileExistsError:
            raise OutputError(subject, "another run took the lock at the same moment") from None
        except OSError as err:
            raise OutputError(subject, f"cannot lock it ({err.strerror or err})") from err
        self._thread = threading.Thread(target=self._beat, name="tilerun-lock", daemon=True)
        self._thread.start()

    def _take_over(self, stale: str, subject: object) -> None:
        """Remove a stale lock without ever removing a fresh one made meanwhile by another run:
        move it aside (atomic), and if what was moved is not the stale record, put it back."""
        grabbed = self.path.with_name(f".{self.path.name}.stale.{os.getpid()}")
        try:
            os.rename(self.path, grabbed)
        except FileNotFoundError:
            return  # another run removed it first; the race is decided by _create
        try:
            if grabbed.read_text() != stale:
                with contextlib.suppress(FileExistsError):
                    os.link(grabbed, self.path)
                raise OutputError(subject, "another run took the lock at the same moment")
        finally:
            grabbed.unlink(missing_ok=True)

    def _create(self, text: str) -> None:
        """Create the lock file with its record in one step: written to a temporary file, then
        hard-linked to the lock's name (which fails if it exists). A lock file is thus never
        seen empty, which a concurrent :meth:`holder` would take for a stale lock."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            temporary.write_text(text)
            os.link(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)
