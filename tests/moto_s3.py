"""A local S3 stand-in (moto in server mode, its own process) for the object-storage tests.

moto runs as a process of its own: rasterio holds the GIL while GDAL opens a dataset, so a
server thread in the test process would never answer.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
               "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run a moto S3 server on 127.0.0.1; yields its ``host:port``."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (test extra)")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                yield f"127.0.0.1:{port}"
                return
            time.sleep(0.1)
        pytest.fail(f"moto server did not start on port {port}")
    finally:
        proc.terminate()
        proc.wait(10)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=f"http://{endpoint}", **CREDENTIALS)


def s3_environment(endpoint: str) -> dict[str, str]:
    """Credentials and endpoint as a user sets them, in the environment only: GDAL reads the
    ``AWS_S3_ENDPOINT``/``AWS_HTTPS``/``AWS_VIRTUAL_HOSTING`` names, obstore and boto3 the
    ``AWS_ENDPOINT_URL``/``AWS_ALLOW_HTTP`` ones."""
    return {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1", "AWS_S3_ENDPOINT": endpoint, "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE", "AWS_ENDPOINT_URL": f"http://{endpoint}",
        "AWS_ALLOW_HTTP": "true",
    }
