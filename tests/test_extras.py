"""Extras: a plain install runs the default path; an option whose extra is missing stops before
any work with one line that gives the exact ``pip install``.

A missing package is simulated the way Python itself records one: ``sys.modules[name] = None``
makes ``import name`` raise ImportError (and, in a subprocess, an import hook refuses every
module of every extra, as a plain install lacks them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import scene_and_package

import tilerun
from tilerun.cli import main
from tilerun.engine.dry_run import plan_run
from tilerun.errors import OptionError, TilerunError
from tilerun.extras import EXTRA_OF, MissingExtraError, installed, optional, store_errors

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_every_extra_module_is_installed_for_the_tests():
    """'dev' installs every extra, so CI runs every path (nothing here may be skipped)."""
    assert all(installed(m) for m in EXTRA_OF), [m for m in EXTRA_OF if not installed(m)]


def test_a_missing_module_is_one_error_with_the_pip_command(monkeypatch):
    block(monkeypatch, "pyarrow")
    with pytest.raises(MissingExtraError) as caught:
        optional("pyarrow", "regions.parquet")
    assert isinstance(caught.value, TilerunError)
    assert str(caught.value) == ("regions.parquet: a vector export needs the 'vector' extra "
                                 "(pyarrow is not installed): pip install 'tilerun[vector]'")


def test_a_vector_export_without_the_extra_is_one_line_and_writes_nothing(monkeypatch,
                                                                           tmp_path):
    block(monkeypatch, "shapely")
    line = one_error_line(invoke("export", tmp_path / "o.zarr", tmp_path / "r.gpkg"))
    assert line.endswith("pip install 'tilerun[vector]'") and "r.gpkg" in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_bucket_output_without_the_extra_is_one_line(monkeypatch, tmp_path):
    files = scene_and_package(tmp_path)
    block(monkeypatch, "obstore")
    line = one_error_line(invoke("predict", files["scene"], "-o", "s3://bucket/o.zarr",
                                 "--model", files["package"], "--quiet"))
    assert line.endswith("pip install 'tilerun[cloud]'") and "s3://bucket/o.zarr" in line, line
    info = one_error_line(invoke("info", "s3://bucket/o.zarr"))
    assert info.endswith("pip install 'tilerun[cloud]'"), info
    assert store_errors() == ()  # nothing can have raised obstore's errors


def test_openvino_asked_for_without_the_extra_says_how_to_install(monkeypatch, tmp_path):
    files = scene_and_package(tmp_path)
    block(monkeypatch, "openvino")
    with pytest.raises(OptionError, match=r"pip install 'tilerun\[openvino\]'"):
        tilerun.run(files["scene"], files["package"], tmp_path / "o.zarr",
                    tilerun.PredictOptions(backend="openvino", tile=64))
    plan = plan_run(files["scene"], files["package"], tmp_path / "o.zarr",
                    tilerun.PredictOptions(tile=64))
    # auto does not try what is not installed
    assert set(plan.backend_candidates) == {"onnxruntime", "torch"}, plan.backend_candidates


def test_a_cluster_without_the_extra_is_one_line(monkeypatch, tmp_path):
    files = scene_and_package(tmp_path)
    block(monkeypatch, "distributed")
    line = one_error_line(invoke("predict", files["scene"], "-o", tmp_path / "o.zarr",
                                 "--model", files["package"], "--workers", 2, "--quiet"))
    assert line == ("error: --workers: a Dask cluster needs the 'cluster' extra (distributed "
                    "is not installed): pip install 'tilerun[cluster]'"), line
    assert not (tmp_path / "o.zarr").exists()


PLAIN_INSTALL = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = set(sys.argv[1].split(","))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NotInstalled())
    import tilerun
    from tilerun.sample import write_scene
    write_scene("scene.tif", 256, 256)
    summary = tilerun.run("scene.tif", "demo", "scene.zarr", tilerun.PredictOptions(
        output=("logits", "labels")))
    print(json.dumps({"backend": summary.backend, "tiles": summary.tiles_run,
                      "loaded": sorted(m for m in BLOCKED if m in sys.modules)}))
""")


def test_the_default_path_runs_without_any_extra(tmp_path):
    """A plain install (no extra) reads a scene, picks a backend and writes a local store."""
    env = {"PYTHONPATH": str(ROOT), "TILERUN_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PLAIN_INSTALL, ",".join(EXTRA_OF)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["backend"] in ("onnxruntime", "torch") and result["tiles"] > 0, result
    assert result["loaded"] == []
    assert (tmp_path / "scene.zarr").is_dir()
