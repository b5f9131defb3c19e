"""One writer per output: a lease that a crashed run cannot leave stuck forever.

The lease is a small JSON record (pid, host, start time, a random token) at ``tilerun.lock``
in the store, created only if absent and renewed every :data:`HEARTBEAT_S` seconds by a daemon
thread while the run lives. A lease not renewed for :data:`STALE_S` seconds, or whose process
is gone on this host, is stale: a new run takes it over. A live one makes a second run fail
with a message naming its holder.

Two stores keep it: :class:`RunLock`, a file in a local folder (created by hard-linking a
complete temporary file, which fails if the name exists; renewed by touching its mtime), and
:class:`ObjectLock`, an object in an object store (created with "put if absent", renewed and
taken over with "put if unchanged": the e-tag compare-and-swap every major store offers). The
protocol — when a lease is live, how it is taken over, what a run that lost it does — is
:class:`Lease`'s, once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from tilerun.errors import OutputError
from tilerun.extras import store_errors
from tilerun.sinks.objects import Conflict, ObjectLocation, StoreUnavailable

LOCK_NAME = "tilerun.lock"


def transient() -> tuple[type[BaseException], ...]:
    """Errors a heartbeat survives (it tries again at the next beat): file system and store
    outages (the store's own errors only once obstore is imported: only then can they occur)."""
    return (OSError, *store_errors(), StoreUnavailable)


#: the lease's key in object storage: inside a ``tilerun.lock/`` prefix, which Zarr lists as a
#: (foreign) folder; a bare ``tilerun.lock`` object is taken by Zarr for a node to open.
LEASE_KEY = f"{LOCK_NAME}/lease"
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


@dataclass(frozen=True)
class Held:
    """A lease as read: its raw text (what a take-over compares), record, age and version."""

    text: str
    record: dict[str, object]
    age: float
    version: str | None = None


class Lease(ABC):
    """The lease protocol; subclasses store the record (:meth:`_read`, :meth:`_create`,
    :meth:`_replace`, :meth:`_renew`, :meth:`_remove`)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.token = secrets.token_hex(8)
        #: set when a renewal found another run's lease in place: this run must not publish
        self.lost = False

    def holds(self, token: str) -> bool:
        """Whether the lease stored now carries ``token``: what a writer checks before each
        chunk and before publishing (a heartbeat alone notices a lost lease only seconds
        later)."""
        found = self._read()
        return found is not None and found.record.get("token") == token

    def holder(self) -> dict[str, object] | None:
        """The live holder's record, or None when unlocked or stale."""
        found = self._read()
        return found.record if found is not None and self._live(found) else None

    @staticmethod
    def _live(found: Held) -> bool:
        """Fresh, and (on this host) its process still runs. An unreadable record counts as
        live until it is stale: it is not ours to judge."""
        if found.age > STALE_S:
            return False
        record = found.record
        pid = record.get("pid")
        return record.get("host") != socket.gethostname() or not isinstance(pid, int) or \
            _alive(pid)

    def acquire(self, subject: object) -> None:
        """Take the lease, or fail with a one-line error naming the live holder."""
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "token": self.token})
        found = self._read()
        try:
            if found is None:
                self._create(text)
            elif self._live(found):
                record = found.record
                raise OutputError(
                    subject,
                    f"another run is writing it (pid {record.get('pid')} on "
                    f"{record.get('host')}, since {record.get('started')}); wait for it, or "
                    "stop it and pass --resume",
                )
            else:
                self._replace(found, text)
        except (FileExistsError, Conflict):
            raise OutputError(subject, "another run took the lock at the same moment") from None
        except OSError as err:
            raise OutputError(subject, f"cannot lock it ({err.strerror or err})") from err
        self._thread = threading.Thread(target=self._beat, name="tilerun-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not self._renew():
                    self.lost = True
                    return
            except transient():
                continue  # a passing outage: try again at the next beat (stale after STALE_S)

    def release(self) -> None:
        """Stop renewing and remove the lease (only ours: never one another run took over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if not self.lost:
                with contextlib.suppress(*transient()):
                    self._remove()

    def _record_of(self, text: str) -> dict[str, object]:
        try:
            record = json.loads(text)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    @abstractmethod
    def _read(self) -> Held | None:
        """The lease as stored, None if there is none."""

    @abstractmethod
    def _create(self, text: str) -> None:
        """Store ``text`` if there is no lease (``FileExistsError`` otherwise), in one step."""

    @abstractmethod
    def _replace(self, stale: Held, text: str) -> None:
        """Replace the stale lease by ``text``, only if it is still that stale lease
        (``Conflict`` or ``FileExistsError`` otherwise)."""

    @abstractmethod
    def _renew(self) -> bool:
        """Show the lease is alive; False when it is no longer ours."""

    @abstractmethod
    def _remove(self) -> None:
        """Delete our lease."""


class RunLock(Lease):
    """A lease in a local folder: ``<folder>/tilerun.lock``; its age is its mtime's."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.path = folder / LOCK_NAME

    def _read(self) -> Held | None:
        try:
            text = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        return Held(text, self._record_of(text), age)

    def _create(self, text: str) -> None:
        """Written to a temporary file, then hard-linked to the lock's name (which fails if it
        exists): a lock file is never seen empty, which a concurrent :meth:`holder` would take
        for a stale lock."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            temporary.write_text(text)
            os.link(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)

    def _replace(self, stale: Held, text: str) -> None:
        """Move the stale lock aside (atomic); if what was moved is not the stale record (a
        fresh lock made meanwhile by another run), put it back and give up."""
        grabbed = self.path.with_name(f".{self.path.name}.stale.{os.getpid()}")
        try:
            os.rename(self.path, grabbed)
        except FileNotFoundError:
            pass  # another run removed it first; the race is decided by _create
        else:
            try:
                if grabbed.read_text() != stale.text:
                    with contextlib.suppress(FileExistsError):
                        os.link(grabbed, self.path)
                    raise Conflict(str(self.path))
            finally:
                grabbed.unlink(missing_ok=True)
        self._create(text)

    def _renew(self) -> bool:
        found = self._read()
        if found is None or found.record.get("token") != self.token:
            return False  # removed, or taken over by another run
        os.utime(self.path)
        return True

    def _remove(self) -> None:
        found = self._read()
        if found is not None and found.record.get("token") == self.token:
            self.path.unlink(missing_ok=True)


class ObjectLock(Lease):
    """A lease object (:data:`LEASE_KEY`) in an object store; its age is the store's
    last-modified time (the server's clock) against ours."""

    def __init__(self, location: ObjectLocation) -> None:
        super().__init__()
        self.location = location
        self._version: str | None = None

    def _read(self) -> Held | None:
        found = self.location.get(LEASE_KEY)
        if found is None:
            return None
        text = found.data.decode("utf-8", "replace")
        age = (dt.datetime.now(dt.timezone.utc) - found.modified).total_seconds()
        return Held(text, self._record_of(text), age, found.e_tag)

    def _create(self, text: str) -> None:
        self._version = self.location.put(LEASE_KEY, text.encode(), mode="create")

    def _replace(self, stale: Held, text: str) -> None:
        self._version = self._swap(stale.version, text)

    def _swap(self, version: str | None, text: str) -> str | None:
        """Put ``text`` if the lease is still at ``version``. A store without conditional
        replacement (a local ``file://`` store) falls back to a plain put."""
        try:
            return self.location.put(LEASE_KEY, text.encode(), mode={"e_tag": version})
        except NotImplementedError:
            return self.location.put(LEASE_KEY, text.encode())

    def _renew(self) -> bool:
        found = self._read()
        if found is None or found.record.get("token") != self.token:
            return False
        try:
            self._version = self._swap(found.version, found.text)
        except Conflict:
            return False
        return True

    def _remove(self) -> None:
        found = self._read()
        if found is not None and found.record.get("token") == self.token:
            self.location.delete(LEASE_KEY)
