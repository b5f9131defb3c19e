"""A failure never costs the user what they already had, and ``--resume`` never answers for
another job: each case through the CLI, in a folder and in (moto's) S3 where it applies."""

# ruff: noqa: F811  (the shared fixtures are imported by name, then taken as arguments)
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr
from click.testing import CliRunner
from integrity_fixtures import (  # noqa: F401  (fixtures)
    endpoint,
    files,
    logits,
    one_error_line,
    place,
    predict,
    reference,
    rewrite_keeping_stat,
)
from rasterio.windows import Window

from tilerun.cli import main
from tilerun.sinks.layout.store import open_finished, output_store
from tilerun.sinks.objects import object_url


def test_resume_on_another_jobs_complete_output_is_refused_or_recomputed(files, place,
                                                                        tmp_path):
    out = place("done.zarr")
    scene = tmp_path / "scene.tif"
    scene.write_bytes(files["scene"].read_bytes())
    local = {**files, "scene": scene}
    assert predict(local, out).exit_code == 0
    before = logits(out)
    one_error_line(predict(local, out, "--resume", "--tile", "64"), out,
                   "is complete, but made by a different job", "tile differs (32 then, 64 now)",
                   "--overwrite with --resume")
    np.testing.assert_array_equal(logits(out), before)  # untouched
    same = predict(local, out, "--resume")  # the same job: nothing to do
    assert same.exit_code == 0 and "nothing to do" in same.output, same.output
    rewrite_keeping_stat(scene, files["twin"])
    one_error_line(predict(local, out, "--resume"), "the input's content differs",
                   "scene.tif was rewritten")
    np.testing.assert_array_equal(logits(out), before)
    again = predict(local, out, "--resume", "--overwrite")
    assert again.exit_code == 0, again.output
    np.testing.assert_allclose(logits(out), reference(files, "twin"), atol=1e-6)


def test_an_output_inside_a_zarr_store_is_refused(files, place):
    host = place("host.zarr")
    assert predict(files, host, "--write", "logits,labels").exit_code == 0
    before = logits(host)
    for inside in (f"{host}/labels", f"{host}/deeper/new.zarr"):
        one_error_line(predict(files, inside, "--overwrite"), inside,
                       "is inside the Zarr store", "choose a")
    np.testing.assert_array_equal(logits(host), before)
    assert CliRunner().invoke(main, ["info", host, "--verify"]).exit_code == 0


def _mosaic(root: Path, scene: Path) -> Path:
    """A VRT of ``scene`` cut in two files: rows 0–159 and 160–191 (the last chunk row)."""
    with rasterio.open(scene) as src:
        parts = []
        for name, top, rows in (("top", 0, 160), ("bottom", 160, src.height - 160)):
            window = Window(0, top, src.width, rows)
            profile = {**src.profile, "height": rows, "transform": src.window_transform(window)}
            with rasterio.open(root / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
            parts.append((name, top, rows))
        sources = "".join(
            f'<VRTRasterBand dataType="Byte" band="{b}">' + "".join(
                f'<SimpleSource><SourceFilename relativeToVRT="1">{n}.tif</SourceFilename>'
                f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{src.width}" '
                f'ySize="{rows}"/><DstRect xOff="0" yOff="{top}" xSize="{src.width}" '
                f'ySize="{rows}"/></SimpleSource>' for n, top, rows in parts)
            + "</VRTRasterBand>" for b in range(1, src.count + 1))
        geo = ", ".join(str(v) for v in src.transform.to_gdal())
        vrt = root / "mosaic.vrt"
        vrt.write_text(f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">'
                       f"<SRS>{src.crs.to_wkt()}</SRS><GeoTransform>{geo}</GeoTransform>"
                       f"{sources}</VRTDataset>")
    return vrt


def test_a_failed_overwrite_keeps_the_old_output_and_says_how_to_resume(files, place, tmp_path):
    out = place("kept.zarr")
    assert predict(files, out).exit_code == 0
    before = logits(out)
    mosaic = {**files, "scene": _mosaic(tmp_path, files["twin"])}
    bottom = tmp_path / "bottom.tif"
    saved = bottom.read_bytes()
    bottom.write_bytes(saved[: len(saved) // 3])  # a VRT source cut short: reads fail mid-run
    where = f"{out}.partial"  # beside the old output, in a folder and in a bucket alike
    line = one_error_line(predict(mosaic, out, "--overwrite"), "mosaic.vrt", "failed to read",
                          f"chunk(s) written before it are kept in {where}", "--resume")
    assert "nothing written" not in line
    np.testing.assert_array_equal(logits(out), before)  # the old output, whole
    assert open_finished(out)[1]["complete"] is True
    bottom.write_bytes(saved)  # repaired: the input changed, so its chunks are not reused
    refused = predict(mosaic, out, "--overwrite", "--resume")
    one_error_line(refused, "different run", "bottom.tif was rewritten")
    np.testing.assert_array_equal(logits(out), before)  # still the old output
    resumed = predict(mosaic, out, "--overwrite")
    assert resumed.exit_code == 0, resumed.output
    np.testing.assert_allclose(logits(out), reference(files, "twin"), atol=1e-6)
    if object_url(out):
        assert output_store(out + ".partial").location.is_empty()  # type: ignore[union-attr]
    else:
        assert not Path(f"{out}.partial").exists()


def test_a_kill_inside_the_local_switch_is_repaired_by_the_next_run(files, tmp_path):
    out = tmp_path / "out.zarr"
    replaced, staging = tmp_path / "out.zarr.replaced", tmp_path / "out.zarr.partial"
    old = tmp_path / "old.zarr"
    assert predict(files, str(old), scene="twin").exit_code == 0
    # killed after both renames: the old output only awaited deletion
    assert predict(files, str(out)).exit_code == 0
    shutil.copytree(old, replaced)
    again = predict(files, str(out), "--overwrite")
    assert again.exit_code == 0, again.output
    assert "removed" in again.stderr and not replaced.exists()
    # killed between the renames: the complete new store waits beside the old one
    out.rename(staging)
    shutil.copytree(old, replaced)
    resumed = predict(files, str(out), "--resume")
    assert resumed.exit_code == 0 and "nothing to do" in resumed.output, resumed.output
    assert "finished publishing" in resumed.stderr
    assert not replaced.exists() and not staging.exists()
    np.testing.assert_allclose(logits(out), reference(files), atol=1e-6)


def test_a_kill_inside_the_bucket_switch_is_finished_by_the_next_run(files, place,
                                                                    monkeypatch):
    from tilerun.sinks import object_store

    out = place("switch.zarr")
    if not object_url(out):
        pytest.skip("a folder switches by rename (the test above)")
    assert predict(files, out, scene="twin").exit_code == 0

    def killed_midway(final, staging):  # type: ignore[no-untyped-def]
        group = zarr.open_group(final.zarr_store(), mode="r+")
        group.attrs["tilerun"] = {**group.attrs["tilerun"], "complete": False}
        final.delete_all(keep="tilerun.lock/")
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(object_store, "switch", killed_midway)
        assert predict(files, out, "--overwrite").exit_code == 130
    assert output_store(out).completed() is None  # never a mix that says complete
    resumed = predict(files, out, "--resume")
    assert resumed.exit_code == 0 and "nothing to do" in resumed.output, resumed.output
    assert "finished replacing it" in resumed.stderr
    np.testing.assert_allclose(logits(out), reference(files), atol=1e-6)
