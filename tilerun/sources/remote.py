"""Rasters on web servers and in object stores, read through GDAL's virtual file systems.

rasterio maps ``s3://``, ``gs://``, ``az://`` and ``http(s)://`` URLs to GDAL's ``/vsis3/``,
``/vsigs/``, ``/vsiaz/`` and ``/vsicurl/`` itself; this module recognises such inputs (so the
local-file guards skip them), holds the GDAL options that make window-by-window reading of a
remote COG cheap, and turns GDAL's network errors into one short line. Credentials are never
tilerun's business: rasterio asks boto3 for AWS's (``AWS_*`` variables, ``~/.aws``), and GDAL
reads the others (``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_*``) from the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: URL schemes read remotely (rasterio's own mapping to GDAL's virtual file systems).
REMOTE_SCHEMES = ("s3", "gs", "az", "http", "https")
#: GDAL virtual file systems that reach the network; such a path is passed on as it is.
VSI_PREFIXES = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/")

_SCHEMES = "|".join(REMOTE_SCHEMES)
_URL = re.compile(rf"^(?:{_SCHEMES})://", re.IGNORECASE)
#: ``Path("s3://b/k")`` is ``s3:/b/k``: a scheme whose double slash a Path merged into one.
_MERGED = re.compile(rf"^((?:/vsicurl/)?(?:{_SCHEMES})):/(?!/)", re.IGNORECASE)

#: GDAL options for a remote raster, set around every open and read (a user's environment
#: variable of the same name wins). GDAL reads VSI_CACHE and READDIR at open, the HTTP ones at
#: each read, so they must be in force in every thread that reads, not only the opening one.
REMOTE_OPTIONS: dict[str, str] = {
    # Without it GDAL lists the parent "directory" (one more GET; on S3 a bucket listing, slow
    # or forbidden) to find sidecar files (.aux.xml, .ovr, .msk) a COG does not have.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # Keeps the bytes a dataset handle read (header, tile index) in memory for its lifetime.
    "VSI_CACHE": "TRUE",
    # One range request for the adjacent tiles of a window, not one per tile.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # Parallel range requests share one HTTP/2 connection where the server speaks HTTP/2.
    "GDAL_HTTP_MULTIPLEX": "YES",
    # A throttled (429) or briefly failing (5xx) store must not end a long run mid-way.
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
}


def remote_url(obj: str | Path) -> str | None:
    """The URL (or GDAL ``/vsi…/`` path) ``obj`` names, or None when it is a local path.

    A Path merges the double slash of ``https://host/a.tif`` into ``https:/host/a.tif`` (and
    click hands the CLI's INPUT over as a Path), so such a Path that is not a local file is
    taken as the URL it was.
    """
    text = os.fspath(obj)
    if isinstance(obj, Path):
        looks_remote = bool(_MERGED.match(text)) or text.startswith(VSI_PREFIXES)
        if not looks_remote or obj.exists():
            return None
        text = _MERGED.sub(r"\1://", text)
    if _URL.match(text) or text.startswith(VSI_PREFIXES):
        return text
    return None


def remote_options() -> dict[str, str]:
    """:data:`REMOTE_OPTIONS` less those the user set as environment variables: a GDAL option
    set through rasterio would override the user's own tuning (GDAL reads the environment only
    for options nobody set)."""
    return {key: value for key, value in REMOTE_OPTIONS.items() if key not in os.environ}


#: GDAL's words for common failures → what to tell the user (first match wins).
_PROBLEMS = (
    # GDAL found no AWS credentials: "AWS_SECRET_ACCESS_KEY and AWS_NO_SIGN_REQUEST
    # configuration options not defined, and ~/.aws/credentials not filled"
    (re.compile(r"configuration options not defined|credentials not filled", re.I),
     "no storage credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
     "AWS_PROFILE), or AWS_NO_SIGN_REQUEST=YES for a public bucket"),
    (re.compile(r"response code:? *404|does not exist|not found|no such", re.I), "not found"),
    (re.compile(r"response code:? *40[13]|access denied|forbidden|credential|signature", re.I),
     "access denied (check the storage credentials in the environment)"),
    (re.compile(r"connect|resolve host|timed? ?out", re.I), "cannot reach the server"),
    (re.compile(r"got \d+ bytes, expected \d+", re.I),
     "has fewer bytes than its TIFF header says (cut short, or replaced mid-run?)"),
)
#: Exceptions followed down a chain at most (rasterio chains GDAL's errors behind its own).
MAX_CHAIN = 10


def remote_problem(err: BaseException) -> str:
    """One line for a failed remote open or read: GDAL's messages for a 404 or a refused
    connection name the ``/vsi…/`` path and may span lines, which would bury the cause."""
    detail = _gdal_detail(err)
    code = re.search(r"response code:? *(\d{3})", detail, re.I)
    for pattern, problem in _PROBLEMS:
        if pattern.search(detail):
            if problem.startswith("no storage credentials"):
                return problem
            return f"{problem} (HTTP {code[1]})" if code else f"{problem} ({detail})"
    return f"cannot be read remotely ({detail})"


def gdal_detail(err: BaseException) -> str:
    """GDAL's most specific message for a failed read, on one line (a local VRT whose source
    is missing says which file, where rasterio says "See previous exception")."""
    return _gdal_detail(err)


def _gdal_detail(err: BaseException) -> str:
    """GDAL's most specific message, on one line. A failed read surfaces as rasterio's "Read
    failed. See previous exception for details."; the cause is the last error in its chain."""
    messages: list[str] = []
    cause: BaseException | None = err
    while cause is not None and len(messages) < MAX_CHAIN:
        messages.append(" ".join(str(cause).split()))
        cause = cause.__cause__ or cause.__context__
    specific = [m for m in messages if m and "previous exception" not in m]
    return specific[-1] if specific else messages[0]
