"""Rasters read over HTTP and from S3 (GDAL's /vsicurl/ and /vsis3/) against the local file.

The HTTP server (range_server.py) and the S3 stand-in (moto) run as processes of their own:
rasterio holds the GIL while GDAL opens a dataset, so a server thread in this process would
never answer. Each test asks for a fresh URL (a query string) where it counts requests, since
GDAL's /vsicurl/ cache is shared by the whole process.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import rioxarray  # noqa: F401  (registers the .rio accessor)
from click.testing import CliRunner, Result
from moto_s3 import free_port, moto_server, s3_client, s3_environment

import tilerun
from tilerun.cli import main
from tilerun.errors import InputError
from tilerun.geometry import Window
from tilerun.models import build_unet
from tilerun.sample import write_scene
from tilerun.sources import GeoTIFFSource, open_source
from tilerun.sources.remote import remote_options, remote_problem, remote_url

SIZE, BLOCK = 256, 64
MEAN, STD = (120.0, 120.0, 120.0), (60.0, 60.0, 60.0)
WINDOWS = [Window(x, y, BLOCK, BLOCK) for y in range(0, SIZE, BLOCK) for x in range(0, SIZE, BLOCK)]
# One thread: remote and local runs are compared bit for bit, and with several threads the
# tiles a model batch holds (so its float rounding, ~1e-7) depend on timing.
OPTIONS = {"tile": 64, "chunk": 64, "backend": "torch", "mean": MEAN, "std": STD, "threads": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """scene.tif: a COG of 4×4 blocks of 64 px (so windows hit different byte ranges), and
    cut.tif: its first half only (header intact, most tiles missing)."""
    root = tmp_path_factory.mktemp("served")
    write_scene(root / "plain.tif", SIZE, SIZE)
    rasterio.shutil.copy(root / "plain.tif", root / "scene.tif", driver="COG", BLOCKSIZE=BLOCK,
                         COMPRESS="DEFLATE", OVERVIEWS="NONE")
    data = (root / "scene.tif").read_bytes()
    (root / "cut.tif").write_bytes(data[: len(data) // 2])
    return root


@dataclass
class Server:
    """The running range server: its base URL and its request log."""

    base: str
    log: Path

    def url(self, name: str, fresh: str = "") -> str:
        """A URL of a served file; ``fresh`` makes it new to GDAL's cache (a query string)."""
        return f"{self.base}/{name}" + (f"?{fresh}" if fresh else "")

    def requests(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture(scope="module")
def server(files, tmp_path_factory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("log") / "requests.log"
    script = Path(__file__).with_name("range_server.py")
    proc = subprocess.Popen([sys.executable, str(script), str(files), str(log)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield Server(f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return build_unet("unet", in_channels=3, classes=2, base=4, depth=2).eval()


@pytest.fixture(scope="module")
def local_logits(files, model, tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("local") / "o.zarr"
    return tilerun.predict(files / "scene.tif", model, out, **OPTIONS)["logits"].values


def test_urls_are_recognised_and_paths_are_not(tmp_path):
    assert remote_url("s3://bucket/scene.tif") == "s3://bucket/scene.tif"
    assert remote_url("gs://bucket/scene.tif") == "gs://bucket/scene.tif"
    assert remote_url("https://host/a/scene.tif") == "https://host/a/scene.tif"
    assert remote_url("/vsis3/bucket/scene.tif") == "/vsis3/bucket/scene.tif"
    # click turns the CLI's INPUT into a Path, which merges "//" into "/"
    assert remote_url(Path("https://host:80/a/scene.tif")) == "https://host:80/a/scene.tif"
    assert remote_url(Path("s3://bucket/scene.tif")) == "s3://bucket/scene.tif"
    assert remote_url(Path("/vsicurl/https://host/x.tif")) == "/vsicurl/https://host/x.tif"
    assert remote_url("scene.tif") is None
    assert remote_url(tmp_path / "https:" / "x.tif") is None
    local = tmp_path / "s3:" / "b.tif"  # a real local file of that odd name stays local
    local.parent.mkdir()
    local.touch()
    assert remote_url(Path(str(local))) is None


def test_user_environment_wins_over_the_remote_defaults(monkeypatch):
    monkeypatch.setenv("VSI_CACHE", "FALSE")
    options = remote_options()
    assert "VSI_CACHE" not in options
    assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"


def test_problems_are_one_short_line():
    assert remote_problem(OSError("HTTP response code: 404")) == "not found (HTTP 404)"
    assert remote_problem(OSError("HTTP response code: 403")).startswith("access denied")
    line = remote_problem(OSError("Couldn't connect to server\nmore"))
    assert line.startswith("cannot reach the server") and "\n" not in line
    try:  # rasterio chains GDAL's own error behind a generic one: the cause is reported
        try:
            raise OSError("TIFFFillTile: Read error; got 633 bytes, expected 5357")
        except OSError as gdal:
            raise OSError("Read failed. See previous exception for details.") from gdal
    except OSError as err:
        assert "got 633 bytes, expected 5357" in remote_problem(err)


def test_http_run_gives_the_local_logits_and_georeference(server, files, model, local_logits,
                                                          tmp_path):
    ds = tilerun.predict(server.url("scene.tif"), model, tmp_path / "o.zarr", **OPTIONS)
    np.testing.assert_array_equal(ds["logits"].values, local_logits)
    with rasterio.open(files / "scene.tif") as src:
        assert ds.rio.crs == src.crs
        assert ds.rio.transform() == src.transform


def test_window_reads_do_not_refetch_the_header(server, files):
    url = server.url("scene.tif", "windows")
    before = len(server.requests())
    src = open_source(url)
    opened = len(server.requests())
    with rasterio.open(files / "scene.tif") as local:
        for window in WINDOWS:
            pixels, valid = src.read(window)
            np.testing.assert_array_equal(pixels, local.read(window=_rio(window)))
            assert valid.all()
    after_all = len(server.requests())
    src.read(WINDOWS[5])
    src.read(WINDOWS[5])
    assert len(server.requests()) == after_all  # a window read again: no request at all
    fetched = server.requests()[before:]
    assert opened - before <= 3, fetched  # HEAD + the header's first bytes (+ its tail)
    assert after_all - before < len(WINDOWS), fetched  # 16 windows, fewer requests in all
    # no directory listing (GET of the parent), no probes for .aux.xml/.ovr/.msk sidecars
    assert all(line.split()[1].startswith("/scene.tif?") for line in fetched), fetched


def _rio(window: Window) -> rasterio.windows.Window:
    return rasterio.windows.Window(window.x, window.y, window.width, window.height)


def test_threads_and_pickles_share_the_header(server, files):
    """Each thread opens its own handle, and a pickled copy reopens the URL: none of them
    fetches the header again (GDAL's /vsicurl/ cache), and all read the same pixels."""
    src = open_source(server.url("scene.tif", "threads"))
    src.read(WINDOWS[0])
    before = len(server.requests())
    copy = pickle.loads(pickle.dumps(src))
    with ThreadPoolExecutor(4) as pool:
        mine = list(pool.map(lambda w: src.read(w)[0], WINDOWS))
        theirs = list(pool.map(lambda w: copy.read(w)[0], WINDOWS))
    local = GeoTIFFSource(files / "scene.tif")
    for window, a, b in zip(WINDOWS, mine, theirs, strict=True):
        np.testing.assert_array_equal(a, local.read(window)[0])
        np.testing.assert_array_equal(b, a)
    fetched = server.requests()[before:]
    assert not any(line.startswith("HEAD") for line in fetched), fetched
    assert len(fetched) < len(WINDOWS), fetched


def test_a_remote_file_cut_short_fails_at_its_read_in_one_line(server):
    src = open_source(server.url("cut.tif"))  # no local truncation guard for a URL
    with pytest.raises(InputError) as caught:
        for window in WINDOWS:
            src.read(window)
    message = str(caught.value)
    assert message.startswith(server.url("cut.tif")) and "\n" not in message
    assert "fewer bytes than its TIFF header says" in message  # GDAL's cause, not rasterio's


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_error_line(result: Result, *names: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_cli_reads_a_url(server, files, model, tmp_path):
    package = tmp_path / "m.safetensors"
    tilerun.save_package(model, package, mean=MEAN, std=STD)
    args = ("--model", package, "--tile", 64, "--chunk", 64, "--backend", "torch", "--quiet",
            "--threads", 1)  # compared bit for bit: see OPTIONS
    local = invoke("predict", files / "scene.tif", "-o", tmp_path / "local.zarr", *args)
    remote = invoke("predict", server.url("scene.tif"), "-o", tmp_path / "remote.zarr", *args)
    assert local.exit_code == 0 and remote.exit_code == 0, (local.output, remote.output)
    import xarray as xr

    a = xr.open_zarr(tmp_path / "local.zarr")["logits"].values
    b = xr.open_zarr(tmp_path / "remote.zarr")["logits"].values
    np.testing.assert_array_equal(a, b)


def test_cli_missing_url_is_one_error_line(server, tmp_path):
    url = server.url("missing.tif")
    result = invoke("predict", url, "-o", tmp_path / "o.zarr", "--quiet")
    line = assert_one_error_line(result, url)
    assert "not found" in line and "404" in line
    assert not (tmp_path / "o.zarr").exists()


def test_cli_unreachable_server_is_one_error_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/scene.tif"  # nothing listens there
    line = assert_one_error_line(invoke("predict", url, "-o", tmp_path / "o.zarr"), url)
    assert "cannot reach the server" in line


# --- S3, through moto's stand-in server -------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(files) -> Iterator[str]:
    """A moto S3 server holding s3://tilerun/scene.tif; its host:port."""
    with moto_server() as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="tilerun")
        client.upload_file(str(files / "scene.tif"), "tilerun", "scene.tif")
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> None:
    """Credentials and endpoint as a user sets them: environment only (GDAL and boto3 read it)."""
    for key, value in s3_environment(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_NO_SIGN_REQUEST"):
        monkeypatch.delenv(key, raising=False)


def test_s3_run_gives_the_local_logits(s3_env, files, model, local_logits, tmp_path):
    ds = tilerun.predict("s3://tilerun/scene.tif", model, tmp_path / "o.zarr", **OPTIONS)
    np.testing.assert_array_equal(ds["logits"].values, local_logits)
    with rasterio.open(files / "scene.tif") as src:
        assert ds.rio.crs == src.crs
        assert ds.rio.transform() == src.transform


def test_s3_missing_object_is_one_error_line(s3_env, tmp_path):
    url = "s3://tilerun/missing.tif"
    line = assert_one_error_line(invoke("predict", url, "-o", tmp_path / "o.zarr"), url)
    assert "not found" in line


def test_the_default_output_of_a_url_is_its_file_name_here():
    from tilerun.cli.predict import _default_output

    assert _default_output(Path("s3://bucket/dir/scene.tif")) == Path("scene.zarr")
    assert _default_output(Path("https://host/a/b.tif")) == Path("b.zarr")
    assert _default_output(Path("data/scene.tif")) == Path("data/scene.zarr")
