"""What went wrong in an object store, in a few words, from the storage library's long text.

obstore's errors carry the whole HTTP exchange: the S3 XML error body, a "Debug source" dump,
and, when no credentials are configured, a refused request to the cloud's instance metadata
service (``169.254.169.254``), which tells a user nothing about the missing credentials.
:func:`store_problem` names the problem (no credentials, no such bucket, access denied, the
server unreachable) and keeps the store's own error code, on one line.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tilerun.errors import first_line

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
