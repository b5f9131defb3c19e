"""Outputs in object storage: ``s3://``, ``gs://``, ``az://`` (and ``file://``, ``memory://``).

A Dask cluster on Kubernetes has no shared file system, so its workers write each chunk
straight into the bucket. Object stores have no rename and no ``O_EXCL``, but they have
*conditional writes*: "create only if absent" (``If-None-Match: *``) and "replace only if
unchanged" (``If-Match: <etag>``), on S3, GCS and Azure alike. The object-store sink builds
its single-writer lease on those (see :mod:`tilerun.sinks.lease`) and its completion on a
flag written last, so nothing needs a rename.

`obstore <https://developmentseed.org/obstore/>`_ talks to the stores, and Zarr writes
through :class:`zarr.storage.ObjectStore`. Credentials, region and endpoint come from the
storage library's usual environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_ACCOUNT_NAME`` …), never from tilerun's
options. A :class:`ObjectLocation` pickles as its URL, so each Dask worker opens its own client.

A failed request is said in a few words. obstore's errors carry the whole HTTP exchange: the
S3 XML error body, a "Debug source" dump, and, when no credentials are configured, a refused
request to the cloud's instance metadata service (``169.254.169.254``), which tells a user
nothing about the missing credentials. :func:`store_problem` names the problem (no
credentials, no such bucket, access denied, the server unreachable) and keeps the store's own
error code, on one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tilerun.errors import OutputError, first_line
from tilerun.extras import require_extra

#: URL schemes taken for object storage (``memory://`` lives in one process: for tests).
SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "azure", "file", "memory"})


def object_url(out: object) -> str | None:
    """``out`` as an object-store URL, or None for a local path."""
    if not isinstance(out, str) or "://" not in out:
        return None
    scheme = urlsplit(out).scheme.lower()
    return out.rstrip("/") if scheme in SCHEMES else None


@dataclass(frozen=True)
class Found:
    """An object's bytes and what the store says of them."""

    data: bytes
    e_tag: str | None
    modified: dt.datetime


class ObjectLocation:
    """A prefix in an object store (an output's root), opened lazily, pickled as its URL."""

    def __init__(self, url: str) -> None:
        require_extra("cloud", url)
        self.url = url.rstrip("/")
        self._store: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "_store": None}

    def __repr__(self) -> str:
        return f"ObjectLocation({self.url!r})"

    @property
    def store(self) -> Any:
        """The obstore store rooted at the URL (one client per process)."""
        if self._store is None:
            from obstore.store import from_url

            try:
                self._store = from_url(self.url, mkdir=True) if self._local \
                    else from_url(self.url)
            except (ValueError, OSError, RuntimeError) as err:  # obstore's config errors
                raise OutputError(self.url, f"cannot open the object store ({first_line(err)})") \
                    from err
        return self._store

    @property
    def _local(self) -> bool:
        return self.url.startswith("file://")

    def zarr_store(self, read_only: bool = False) -> Any:
        """The location as a Zarr store."""
        from zarr.storage import ObjectStore

        return ObjectStore(self.store, read_only=read_only)

    def get(self, key: str) -> Found | None:
        """The object at ``key``, or None when there is none."""
        import obstore
        from obstore.exceptions import BaseError, NotFoundError

        try:
            result = obstore.get(self.store, key)
            data = bytes(result.bytes())
        except (NotFoundError, FileNotFoundError):
            return None
        except BaseError as err:
            raise self.unavailable(err) from err
        meta = result.meta
        return Found(data, meta.get("e_tag"), meta["last_modified"])

    def put(self, key: str, data: bytes, mode: str | dict[str, Any] = "overwrite") -> str | None:
        """Write ``data`` at ``key``; returns the new e-tag. ``mode``: ``"overwrite"``,
        ``"create"`` (fails with ``FileExistsError`` if the key exists) or ``{"e_tag": …}``
        (fails with ``PermissionError``-like :class:`Conflict` if it changed)."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, BaseError, PreconditionError

        try:
            result = obstore.put(self.store, key, data, mode=mode)  # type: ignore[arg-type]
        except AlreadyExistsError as err:
            raise FileExistsError(key) from err
        except PreconditionError as err:
            raise Conflict(key) from err
        except BaseError as err:
            raise self.unavailable(err) from err
        return result.get("e_tag")

    def unavailable(self, err: Exception) -> StoreUnavailable:
        problem = store_problem(err, self.url)
        return StoreUnavailable(self.url, f"the object store failed: {problem}")

    def delete(self, key: str) -> None:
        import obstore
        from obstore.exceptions import NotFoundError

        with contextlib.suppress(NotFoundError, FileNotFoundError):
            obstore.delete(self.store, key)

    def list_keys(self, prefix: str | None = None) -> Iterator[str]:
        """Every key under ``prefix`` (the whole location by default)."""
        import obstore
        from obstore.exceptions import BaseError

        try:
            for batch in obstore.list(self.store, prefix=prefix):
                for meta in batch:
                    yield meta["path"]
        except BaseError as err:
            raise self.unavailable(err) from err

    def delete_all(self, prefix: str | None = None, keep: str | None = None) -> None:
        """Delete every object under the folder-like ``prefix`` (all by default) but those
        under ``keep``; in batches, as stores delete up to 1000 keys at once."""
        import obstore
        from obstore.exceptions import BaseError

        keys = [k for k in self.list_keys(prefix) if keep is None or not k.startswith(keep)]
        try:
            for start in range(0, len(keys), 1000):
                obstore.delete(self.store, keys[start:start + 1000])
        except BaseError as err:
            raise self.unavailable(err) from err

    def is_empty(self) -> bool:
        return next(self.list_keys(), None) is None


class Conflict(Exception):
    """A conditional write lost: the object changed since it was read."""


class StoreUnavailable(OutputError):
    """The object store failed (unreachable endpoint, missing bucket, credentials): one
    line naming the URL, and a heartbeat tries again."""


#: Where AWS, GCS and Azure clients ask for credentials when none are configured.
METADATA_HOSTS = ("169.254.169.254", "metadata.google.internal", "169.254.170.2")
#: The environment a user sets for each store (what to say when credentials are missing).
CREDENTIAL_HINTS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or "
          "AWS_SKIP_SIGNATURE=true for a public bucket",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file",
    "az": "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or a SAS token)",
}
#: Store error codes (S3's, which S3-compatible servers share) → the problem in words.
CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such object",
    "AccessDenied": "access denied: the credentials may not do this",
    "InvalidAccessKeyId": "the access key is not known to the store",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the credentials have expired",
    "SlowDown": "the store is throttling requests",
}
_CODE = re.compile(r"<Code>([^<]+)</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_UNREACHABLE = re.compile(r"tcp connect error|connection refused|dns error|error sending request",
                          re.I)
_URI = re.compile(r"(?:GET|PUT|POST|HEAD|DELETE) (https?://[^/\s?]+)")


def store_problem(err: BaseException, url: str) -> str:
    """One line for a failed object-store request on ``url`` (see the module docstring)."""
    text = str(err)
    scheme = _family(url)
    if any(host in text for host in METADATA_HOSTS):
        hint = CREDENTIAL_HINTS.get(scheme, "set the store's credentials in the environment")
        return f"no storage credentials found: {hint}"
    code = _CODE.search(text)
    status = _STATUS.search(text)
    http = f"HTTP {status[1]}, " if status else ""
    if code:
        problem = CODES.get(code[1], "the store refused the request")
        return f"{problem} ({http}{code[1]})"
    if _UNREACHABLE.search(text):
        server = _URI.search(text)
        where = f" at {server[1]}" if server else ""
        return f"cannot reach the object store{where} (check AWS_ENDPOINT_URL or the network)" \
            if scheme == "s3" else f"cannot reach the object store{where}"
    if status and status[1] in ("401", "403"):
        return f"access denied (HTTP {status[1]}): check the storage credentials"
    if status and status[1] == "404":
        return "not found (HTTP 404)"
    return first_line(err)


def _family(url: str) -> str:
    """``s3``, ``gs`` or ``az`` for the URL's scheme and its aliases."""
    scheme = urlsplit(url).scheme.lower()
    return {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "azure": "az"}.get(scheme,
                                                                                      scheme)
