"""One writer per output: a lock file that a crashed run cannot leave stuck forever.

The lock is ``<store>/tilerun.lock`` (JSON: pid, host, start time), created with ``O_EXCL`` and
touched every :data:`HEARTBEAT_S` seconds by a daemon thread while the run lives. A lock whose
heartbeat is older than :data:`STALE_S`, or whose process is gone on this host, is stale: a new
run takes it over. A live one makes a second run fail with a message naming its holder.
"""

from __future__ import annotations

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
        try:
            record = json.loads(self.path.read_text())
            age = time.time() - self.path.stat().st_mtime
        except (OSError, ValueError):
            return None
        same_host = record.get("host") == socket.gethostname()
        if age > STALE_S or (same_host and not _alive(int(record.get("pid", -1)))):
            return None
        return dict(record)

    def acquire(self, subject: object) -> None:
        holder = self.holder()
        if holder is not None:
            raise OutputError(
                subject,
                f"another run is writing it (pid {holder.get('pid')} on {holder.get('host')}, "
                f"since {holder.get('started')}); wait for it, or stop it and pass --resume",
            )
        self.path.unlink(missing_ok=True)  # stale: the run that held it is gone
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise OutputError(subject, "another run took the lock at the same moment") from None
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        self._thread = threading.Thread(target=self._beat, name="tilerun-lock", daemon=True)
        self._thread.start()

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
