"""Object-store failures in a few words (tilerun.sinks.objects), on the texts obstore
gave against the S3 stand-in (cut to the parts that matter)."""

from __future__ import annotations

import pytest

from tilerun.sinks.objects import store_problem

NO_BUCKET = (
    "Generic S3 error: Error performing list request: Error performing GET "
    "http://127.0.0.1:33057/nobucket?list-type=2&prefix=o.zarr%2F in 115ms - Server returned "
    'non-2xx status code: 404 Not Found: <?xml version="1.0" encoding="utf-8"?>\n<Error><Code>'
    "NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>\n\n"
    "Debug source:\nGeneric {...}"
)
NO_CREDENTIALS = (
    "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in 3ms - "
    "Server returned non-2xx status code: 403 Forbidden: resolve_deny: denied destination"
)
REFUSED = (
    "Generic S3 error: Error performing list request: Error performing GET "
    "http://127.0.0.1:1/bkt?list-type=2&prefix=o.zarr%2F in 2.2s, after 10 retries - HTTP "
    'error: error sending request\n\nDebug source:\n ConnectError("tcp connect error")'
)


@pytest.mark.parametrize("text, url, expected", [
    (NO_BUCKET, "s3://nobucket/o.zarr", "the bucket does not exist (HTTP 404, NoSuchBucket)"),
    (NO_CREDENTIALS, "s3://b/o.zarr", "no storage credentials found: set AWS_ACCESS_KEY_ID"),
    (NO_CREDENTIALS, "gs://b/o.zarr", "no storage credentials found: set "
                                      "GOOGLE_APPLICATION_CREDENTIALS"),
    (REFUSED, "s3://b/o.zarr", "cannot reach the object store at http://127.0.0.1:1"),
    ("Server returned non-2xx status code: 403 Forbidden", "az://c/o.zarr",
     "access denied (HTTP 403)"),
])
def test_store_problems_are_named_on_one_line(text, url, expected):
    problem = store_problem(RuntimeError(text), url)
    assert problem.startswith(expected)
    assert "\n" not in problem and "<?xml" not in problem and "169.254" not in problem


def test_an_unknown_failure_keeps_its_first_line():
    assert store_problem(RuntimeError("something odd\nmore"), "s3://b/k") == "something odd"
