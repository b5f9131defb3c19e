"""Cluster, environment and option failures through the CLI: one line, quickly (issue 17 §2).

Each refusal is exactly one ``error:`` line on stderr naming the file or option and the real
problem, exit code 2, no traceback and nothing left under the output's name; each adjustment
(a rounded overlap, capped workers, an option without effect) is one ``warning:`` line and
the run goes on. The object-store cases run against the S3 stand-in (``tests/moto_s3.py``)
and the range server (``tests/sources/range_server.py``).
"""

# ruff: noqa: F811  (the shared fixtures are imported by name, then taken as arguments)
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.moto_s3 import moto_server, s3_client, s3_environment
except ImportError:  # pragma: no cover
    from moto_s3 import moto_server, s3_client, s3_environment  # type: ignore[no-redef]


from messages_fixtures import (  # noqa: F401  (fixtures and helpers shared with other modules)
    closed_port,
    files,
    invoke,
    nothing_written,
    one_error,
    predict,
    warnings_of,
)

# -- cluster -----------------------------------------------------------------------------------


def test_an_unreachable_scheduler_is_one_line_within_seconds(files, tmp_path):
    out = tmp_path / "o.zarr"
    address = f"tcp://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    result = predict(files, files["scene"], out, "--scheduler", address)
    elapsed = time.monotonic() - start
    one_error(result, "--scheduler", address, "connection refused")
    assert elapsed < 20  # was 41 s and a traceback; the connect timeout is 10 s
    nothing_written(out)


def test_a_scheduler_address_that_is_no_address_is_one_line(files, tmp_path):
    result = predict(files, files["scene"], tmp_path / "o.zarr", "--scheduler", "tcp://host:x")
    one_error(result, "--scheduler", "not a scheduler address")


def test_more_workers_than_cores_are_capped_with_the_figures(files, tmp_path):
    out = tmp_path / "o.zarr"
    cores = len(os.sched_getaffinity(0))
    asked = cores + 64
    result = predict(files, files["scene"], out, "--workers", asked, "--dry-run", "--json")
    (line,) = warnings_of(result)
    assert line.startswith(f"warning: --workers {asked} is more than this machine can run")
    assert f"({cores} CPU core(s), " in line and "available, at least 512 MiB per worker" in line
    used = int(line.rsplit("using ", 1)[1].split()[0])
    assert 1 <= used <= cores
    assert json.loads(result.stdout)["memory"]["processes"] == used
    nothing_written(out)


# -- inputs ------------------------------------------------------------------------------------


def test_a_vrt_with_a_missing_source_names_the_source(files, tmp_path):
    source = tmp_path / "gone.tif"
    shutil.copy(files["scene"], source)
    vrt = tmp_path / "mosaic.vrt"
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename '
        f'relativeToVRT="1">gone.tif</SourceFilename><SourceBand>{b}</SourceBand>'
        "</SimpleSource></VRTRasterBand>" for b in (1, 2, 3))
    vrt.write_text(f'<VRTDataset rasterXSize="96" rasterYSize="96">{bands}</VRTDataset>')
    source.unlink()
    out = tmp_path / "o.zarr"
    one_error(predict(files, vrt, out), str(vrt), "gone.tif", "does not exist")
    nothing_written(out)


def test_a_symlink_loop_is_not_called_a_missing_file(files, tmp_path):
    (tmp_path / "a.tif").symlink_to(tmp_path / "b.tif")
    (tmp_path / "b.tif").symlink_to(tmp_path / "a.tif")
    line = one_error(predict(files, tmp_path / "a.tif", tmp_path / "o.zarr"), "a.tif",
                     "symbolic link loop")
    assert "no such file" not in line


def test_a_dangling_symlink_names_its_target(files, tmp_path):
    (tmp_path / "link.tif").symlink_to(tmp_path / "moved.tif")
    one_error(predict(files, tmp_path / "link.tif", tmp_path / "o.zarr"), "link.tif",
              "symbolic link to", "moved.tif", "does not exist")


def test_a_folder_named_like_a_raster_is_called_a_folder(files, tmp_path):
    """A folder is a job's input (the rasters in it): named like a raster and empty, it is
    called a folder that holds none, and nothing is written."""
    (tmp_path / "x.tif").mkdir()
    one_error(predict(files, tmp_path / "x.tif", tmp_path / "out"), "x.tif",
              "folder holds no raster or slide")
    assert not (tmp_path / "out").exists()


def test_a_newline_in_a_path_stays_on_one_line(files, tmp_path):
    missing = tmp_path / "new\nline.tif"
    one_error(predict(files, missing, tmp_path / "o.zarr"), "new\\nline.tif", "no such file")
    present = tmp_path / "odd\nname.tif"
    shutil.copy(files["scene"], present)
    result = predict(files, present, tmp_path / "odd\nname.zarr")
    assert result.exit_code == 0, result.output
    (summary,) = result.stdout.strip().splitlines()
    assert summary.startswith("done ") and summary.endswith("odd\\nname.zarr")


def _ungeoreferenced(path: Path, scene: Path) -> Path:
    """The scene without CRS or transform, in strips (a tiled TIFF without GeoTIFF tags is
    taken for a slide)."""
    with rasterio.open(scene) as src:
        data = src.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", count=3, height=data.shape[1],
                           width=data.shape[2], dtype="uint8") as dst:
            dst.write(data)
    return path


def test_pixel_size_unknown_is_one_warning_and_no_raw_rasterio_warning(files, tmp_path):
    """With the demo model (checked by the CLI first, then by the run) and several threads
    (each opens its own handle)."""
    source = _ungeoreferenced(tmp_path / "plain.tif", files["scene"])
    result = invoke("predict", source, "-o", tmp_path / "o.zarr", "--threads", 3, "--chunk",
                    32, "--quiet")
    lines = warnings_of(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warning: {source}: pixel size unknown")
    assert lines[0].endswith("cannot check it against the model's 10 m")


# -- options -----------------------------------------------------------------------------------


def test_an_empty_band_is_a_typo_not_a_band_count(files, tmp_path):
    line = one_error(predict(files, files["scene"], tmp_path / "o.zarr", "--bands", "1,,2"),
                     "--bands", "empty item", "'1,,2'")
    assert "band(s) selected" not in line


def test_a_huge_batch_is_blamed_on_the_batch_size(files, tmp_path):
    out = tmp_path / "o.zarr"
    result = predict(files, files["scene"], out, "--batch-size", 10**8)
    line = one_error(result, "--batch-size", "batches of 100000000 tiles", "of memory")
    assert not line.startswith("error: --tile")
    nothing_written(out)


def test_a_chunk_larger_than_the_image_says_so(files, tmp_path):
    out = tmp_path / "o.zarr"
    result = predict(files, files["scene"], out, "--chunk", 1048576)
    one_error(result, "--chunk", "1048576 px is larger than the image (96 × 96 px)",
              "use --chunk 96 or less")
    nothing_written(out)


def test_a_tiny_overlap_fraction_rounds_to_none_with_a_note(files, tmp_path):
    result = predict(files, files["scene"], tmp_path / "o.zarr", "--overlap", "1/255",
                     "--dry-run")
    (line,) = warnings_of(result)
    assert "rounded to 0 px" in line and "do not overlap" in line
    assert "overlap 0 px" in result.stdout


def test_an_overlap_in_pixels_off_the_grid_is_rounded_and_says_so(files, tmp_path):
    result = predict(files, files["scene"], tmp_path / "o.zarr", "--overlap", 13, "--dry-run")
    assert warnings_of(result) == ["warning: --overlap 13 px rounded to 12 px (a multiple of "
                                   "the model's downsampling factor 4)"]
    assert "overlap 12 px" in result.stdout


@pytest.mark.parametrize("text", ["nan", "1/0", "-8", "a quarter"])
def test_an_overlap_that_means_nothing_is_refused(files, tmp_path, text):
    one_error(predict(files, files["scene"], tmp_path / "o.zarr", "--overlap", text),
              "--overlap", repr(text))


def test_float16_without_logits_says_it_has_no_effect(files, tmp_path):
    out = tmp_path / "o.zarr"
    result = predict(files, files["scene"], out, "--dtype", "float16", "--write", "labels")
    assert warnings_of(result) == ["warning: --dtype float16 has no effect: it is the stored "
                                   "logits' type, and --write labels writes no logits"]
    assert out.exists()
    quiet = predict(files, files["scene"], tmp_path / "p.zarr", "--dtype", "float16")
    assert warnings_of(quiet) == []


# -- outputs: read-only folders, full disks ----------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[bool]:
    """``folder`` as a small tmpfs mounted with ``options``; yields False where mounting is
    not allowed (not root, or a container without the capability)."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def test_quicklook_into_a_read_only_folder_is_one_line(files, tmp_path):
    folder = tmp_path / "ro"
    with tmpfs(folder, "ro,size=64k") as mounted:
        if not mounted:
            if os.geteuid() == 0:
                pytest.skip("cannot mount a read-only tmpfs here (root ignores chmod)")
            folder.chmod(0o555)
        result = invoke("quicklook", files["store"], folder / "q.png")
        one_error(result, str(folder / "q.png"),
                  "read-only file system" if mounted else "not writable")
        assert list(folder.iterdir()) == []


def test_export_onto_a_full_disk_says_so_and_leaves_nothing(files, tmp_path):
    """A real full disk (a 64 KiB tmpfs) for a COG, whose failed write GDAL only logs, and a
    GeoPackage, whose failure SQLite words as "no such table"."""
    big = tmp_path / "big.zarr"
    scene = tmp_path / "big.tif"
    assert invoke("sample", scene).exit_code == 0
    made = invoke("predict", scene, "-o", big, "--write", "labels", "--quiet")  # demo model
    assert made.exit_code == 0, made.output
    folder = tmp_path / "full"
    with tmpfs(folder, "size=64k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a small tmpfs here (test_export_enospc covers it)")
        for name in ("e.tif", "e.gpkg"):
            result = invoke("export", big, folder / name)
            one_error(result, str(folder / name), "the disk is full", "nothing was written")
            assert list(folder.iterdir()) == []


def test_export_enospc_is_the_disk_being_full(files, tmp_path, monkeypatch):
    """Wherever mounting is not allowed: the vector writer fails with ENOSPC mid-file."""
    import tilerun.exports.vectors as vectors

    def fill_up(batches: object, path: Path, *args: object) -> None:
        path.write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectors, "_write_ogr", fill_up)
    target = tmp_path / "e.gpkg"
    one_error(invoke("export", files["store"], target), str(target), "the disk is full",
              "nothing was written")
    assert list(tmp_path.glob("*e*.gpkg*")) == []


def test_a_tiff_gdal_could_not_finish_is_not_put_in_place(files, tmp_path, monkeypatch):
    """GDAL logs a failed TIFF write and returns: a file cut short must not become FILE."""
    import rasterio.shutil

    real_copy = rasterio.shutil.copy

    def cut_short(src: str, dst: str, **kwargs: object) -> None:
        real_copy(src, dst, **kwargs)
        data = Path(dst).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(rasterio.shutil, "copy", cut_short)
    target = tmp_path / "e.tif"
    one_error(invoke("export", files["store"], target), str(target), "incomplete", "cut short")
    assert list(tmp_path.iterdir()) == []


# -- object storage ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(files) -> Iterator[dict[str, str]]:
    """A moto S3 server with bucket ``in`` holding the scene; yields its environment."""
    with moto_server() as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="inputs")
        client.upload_file(str(files["scene"]), "inputs", "scene.tif")
        yield s3_environment(endpoint)


def _without_credentials(env: dict[str, str], home: Path) -> dict[str, str]:
    """The environment with no credentials anywhere (nor a ~/.aws to fall back on)."""
    bare = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    return {**bare, "HOME": str(home), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}


def _env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)


def test_a_missing_bucket_is_named_not_dumped_as_xml(files, s3, tmp_path, monkeypatch):
    _env(monkeypatch, s3)
    line = one_error(predict(files, files["scene"], "s3://no-such-bucket/o.zarr"),
                     "s3://no-such-bucket/o.zarr", "the bucket does not exist", "NoSuchBucket")
    assert "<?xml" not in line and "<Error>" not in line
    one_error(predict(files, "s3://no-such-bucket/scene.tif", tmp_path / "o.zarr"),
              "s3://no-such-bucket/scene.tif", "not found")
    one_error(predict(files, "s3://inputs/missing.tif", tmp_path / "o.zarr"),
              "s3://inputs/missing.tif", "not found")


def test_missing_credentials_say_so_not_the_metadata_address(files, s3, tmp_path, monkeypatch):
    _env(monkeypatch, _without_credentials(s3, tmp_path))
    for result, subject in (
        (predict(files, "s3://inputs/scene.tif", tmp_path / "o.zarr"), "s3://inputs/scene.tif"),
        (predict(files, files["scene"], "s3://inputs/o.zarr"), "s3://inputs/o.zarr"),
        (invoke("info", "s3://inputs/o.zarr"), "s3://inputs/o.zarr"),
    ):
        line = one_error(result, subject, "no storage credentials found", "AWS_ACCESS_KEY_ID")
        assert "169.254" not in line


def test_a_missing_file_on_a_web_server_is_one_line(files, tmp_path):
    script = Path(__file__).parents[1] / "sources" / "range_server.py"
    proc = subprocess.Popen([sys.executable, str(script), str(files["scene"].parent),
                             str(tmp_path / "requests.log")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/absent.tif"
        one_error(predict(files, url, tmp_path / "o.zarr"), url, "not found (HTTP 404)")
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_unreachable_object_store_names_the_endpoint(files, s3, tmp_path, monkeypatch):
    _env(monkeypatch, {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"})
    line = one_error(invoke("info", "s3://inputs/o.zarr"), "s3://inputs/o.zarr",
                     "cannot reach the object store at http://127.0.0.1:")
    assert "Debug source" not in line
