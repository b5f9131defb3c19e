"""A static file server that answers HTTP Range requests, as object stores do, and logs each.

Run as ``python range_server.py ROOT LOG``: it prints its port, then serves ROOT on 127.0.0.1
and appends ``METHOD PATH RANGE`` to LOG for every request. GDAL needs ranges, which Python's
http.server lacks. It runs in a process of its own, not a thread: rasterio holds the GIL while
GDAL opens a dataset, so a server thread in the test's process could never answer (a hang).
"""

from __future__ import annotations

import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class RangeHandler(BaseHTTPRequestHandler):
    """HEAD and GET of whole files or one byte range (all GDAL asks for)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as GDAL's curl expects of a store
    root = Path(".")
    log = Path("requests.log")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the request log is the file, not stderr."""

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        with self.log.open("a") as log:
            log.write(f"{self.command} {self.path} {self.headers.get('Range')}\n")
        path = self.root / self.path.split("?")[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        match = RANGE.fullmatch(self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            end = min(int(match[2]) if match[2] else end, end)
            if start >= len(data):
                self.send_error(416)
                return
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self.wfile.write(data[start : end + 1])


def main(root: str, log: str) -> None:
    RangeHandler.root = Path(root)
    RangeHandler.log = Path(log)
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
