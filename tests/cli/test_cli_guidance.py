"""A CLI that guides: quick help, a plan before the work, a summary and warnings on one line,
JSON for scripts, a progress bar with rate and ETA, errors that say what to pass (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import click
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner, Result

from tilerun.cli import main
from tilerun.cli.progress import rate_text

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import interrupt_after, predict_cli, scene_and_package, settle
except ImportError:  # pragma: no cover
    from conftest import (  # type: ignore[no-redef]
        interrupt_after,
        predict_cli,
        scene_and_package,
        settle,
    )

#: What printing help must not import (seconds of start-up between them).
HEAVY = ("torch", "xarray", "zarr", "dask", "rasterio", "openslide", "onnxruntime", "openvino")
TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_200_000.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return scene_and_package(tmp_path_factory.mktemp("guidance"))


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _raster(path: Path, count: int, dtype: str, size: int = 64) -> Path:
    profile = {"driver": "GTiff", "count": count, "height": size, "width": size,
               "dtype": dtype, "crs": "EPSG:32633", "transform": TRANSFORM}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((count, size, size), 7, dtype=dtype))
    return path


# -- 3. help without the heavy imports ---------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append([*prefix, name])
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


HELP_SCRIPT = """
import contextlib, io, json, sys
from tilerun.cli import main
paths = json.loads(sys.argv[1])
for path in paths:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main.main([*path, "--help"], prog_name="tilerun")
    assert code in (0, None) and "Usage:" in out.getvalue(), (path, code, out.getvalue())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[2]))
print(json.dumps(heavy))
"""


def test_help_of_every_command_imports_nothing_heavy() -> None:
    """``tilerun --help`` and every command's ``--help`` (others' commands included) import
    neither torch nor Dask, xarray, Zarr or the readers: what made help take seconds."""
    paths = [[], *_command_paths(main)]
    assert ["predict"] in paths and ["model", "info"] in paths
    proc = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, json.dumps(paths), json.dumps(HEAVY)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [], "imported to print help"


def test_the_package_imports_its_api_on_first_use() -> None:
    script = (
        "import sys, tilerun\n"
        "assert 'torch' not in sys.modules and 'dask' not in sys.modules, 'eager'\n"
        "import tilerun.engine, tilerun.backends, tilerun.blending\n"
        "assert 'torch' not in sys.modules, 'engine, backends or blending eager'\n"
        "assert callable(tilerun.predict) and tilerun.run.__name__ == 'run'\n"
        "import tilerun.engine.execute\n"
        "from tilerun.engine import run\n"
        "assert callable(run) and tilerun.engine.run is run, 'the submodule hid the function'\n"
        "assert tilerun.load_model.__name__ == 'load_model'\n"
        "assert set(tilerun.__all__) <= set(dir(tilerun))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_every_blend_name_the_cli_offers_makes_weights() -> None:
    """The names --help lists (without importing the blending code) all work."""
    from tilerun.blending.modes import BLEND_MODES
    from tilerun.blending.windows import Blend
    from tilerun.geometry import make_grid

    grid = make_grid(64, 64, 32, 8)
    for mode in BLEND_MODES:
        weights = Blend(mode, 0.125).weights(grid)
        assert weights.shape == (grid.tile, grid.tile)
        assert (weights >= 0).all() and weights.max() > 0


# -- 4. warnings as one line, in every command ---------------------------------------------------


def test_every_command_shows_warnings_as_one_line() -> None:
    """The group shows any command's warnings (this one is not even wrapped in
    exits_cleanly) as ``warning: <message>``, without category, file or source line."""

    @click.command("warn-once")
    def warn_once() -> None:
        warnings.warn("first line\n  second line", UserWarning, stacklevel=1)
        click.echo("ran")

    main.add_command(warn_once)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            result = invoke("warn-once")
    finally:
        del main.commands["warn-once"]
    assert result.exit_code == 0, result.output
    assert result.stdout == "ran\n"
    assert result.stderr == "warning: first line second line\n"


def test_a_library_warning_in_predict_is_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "plain.tif"  # no georeferencing: pixel size unknown, a warning
    with rasterio.open(source, "w", driver="GTiff", count=3, height=96, width=96,
                       dtype="uint8") as dst:
        dst.write(np.full((3, 96, 96), 100, dtype=np.uint8))
    out = tmp_path / "o.zarr"
    result = invoke("predict", source, "-o", out, "--model", "demo", "--tile", 32,
                    "--chunk", 64, "--backend", "torch", "--quiet")
    assert result.exit_code == 0, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("warning: ") for line in lines), result.stderr
    assert any("pixel size unknown" in line for line in lines), result.stderr
    assert "Warning" not in result.stderr and ".py" not in result.stderr


# -- 5. the summary: stdout, one line, also with --quiet -----------------------------------------


def test_summary_is_one_unwrapped_line_on_stdout_even_quiet(files: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """Not a terminal (CliRunner, like a pipe): rich would wrap at 80 columns."""
    folder = tmp_path / ("a-long-folder-name-" * 5)
    folder.mkdir()
    out = folder / "scene-with-a-long-name.zarr"
    result = predict_cli(files, out, "--quiet", "--backend", "torch")
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert len(lines[0]) > 120
    assert lines[0].startswith("done 16 tiles (1.00× the minimum) in 4 chunks on cpu (torch), ")
    assert lines[0].endswith(f"Mpx/s → {out}")
    # --quiet: no bar and no notes; warnings (if any) stay, one line each
    assert all(line.startswith("warning: ") for line in result.stderr.splitlines())


# -- 1. the progress bar ------------------------------------------------------------------------


def test_rate_text() -> None:
    assert rate_text(0, 0, None) == "– chunks/s, – Mpx/s"
    assert rate_text(0, 0, 2.0) == "– chunks/s, – Mpx/s"
    assert rate_text(5, 3_000_000, 2.0) == "2.50 chunks/s, 1.50 Mpx/s"


def test_progress_bar_shows_rate_and_eta_on_a_terminal(files: dict[str, Path],
                                                       tmp_path: Path) -> None:
    terminal = {"TTY_COMPATIBLE": "1", "COLUMNS": "160"}  # rich: treat stderr as a terminal
    result = CliRunner().invoke(main, [
        "predict", str(files["scene"]), "-o", str(tmp_path / "o.zarr"), "--model",
        str(files["package"]), "--tile", "32", "--chunk", "32", "--backend", "torch",
    ], env=terminal)  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert "/9" in result.stderr and "chunks/s" in result.stderr, result.stderr
    assert "Mpx/s" in result.stderr and "eta" in result.stderr
    assert result.stdout.startswith("done ") and len(result.stdout.splitlines()) == 1

    quiet = CliRunner().invoke(main, [
        "predict", str(files["scene"]), "-o", str(tmp_path / "q.zarr"), "--model",
        str(files["package"]), "--tile", "32", "--chunk", "32", "--backend", "torch", "--quiet",
    ], env=terminal)  # fmt: skip
    assert quiet.exit_code == 0, (quiet.output, quiet.exception)
    assert "chunks/s" not in quiet.stderr and quiet.stdout.startswith("done ")


# -- 8. --json ----------------------------------------------------------------------------------


def test_predict_json_is_the_only_thing_on_stdout(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    result = predict_cli(files, out, "--json", "--backend", "torch")
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(result.stdout.splitlines()) == 1
    summary = json.loads(result.stdout)
    assert summary["output"] == str(out)
    assert summary["tiles_run"] == summary["tiles_minimum"] == 16
    assert summary["chunks"] == 4 and summary["backend"] == "torch"
    assert summary["recompute_ratio"] == 1.0 and summary["pixels"] == 96 * 96
    assert summary["already_complete"] is False

    again = predict_cli(files, out, "--json", "--resume")
    assert again.exit_code == 0, (again.output, again.exception)
    assert json.loads(again.stdout)["already_complete"] is True


def test_info_json(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    assert predict_cli(files, out, "--quiet", "--backend", "torch").exit_code == 0
    result = invoke("info", out, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(result.stdout.splitlines()) == 1
    state = json.loads(result.stdout)
    assert state["state"] == "complete" and state["complete"] is True
    assert state["chunks"] == state["chunks_written"] == 4
    assert state["record"]["tile"] == 32 and state["record"]["complete"] is True
    text = invoke("info", out)
    assert text.stdout.startswith(f"{out}: complete (4 chunks)")

    missing = tmp_path / "missing.zarr"
    assert one_error_line(invoke("info", missing, "--json")).startswith(f"error: {missing}: ")


# -- 2. --dry-run ---------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(files: dict[str, Path],
                                                    tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    before = sorted(tmp_path.iterdir())
    result = predict_cli(files, out, "--dry-run", "--write", "logits,labels")
    assert result.exit_code == 0, (result.output, result.exception)
    assert_nothing_written(out)
    assert sorted(tmp_path.iterdir()) == before  # not even a probe folder or a lock is left
    text = result.stdout
    assert "dry run: nothing written" in text
    assert "  tiles    16 to run of 16, none skipped (32 px, overlap 8 px)" in text
    assert "  chunks   4 of 64 px" in text
    assert "  memory   at least " in text and " available" in text
    # logits 2 × 96 × 96 float32 (72 KiB) + labels 96 × 96 uint8 (9 KiB)
    assert "  output   81 KiB before compression: logits float32 2×96×96 72 KiB, labels " \
           "uint8 96×96 9 KiB" in text
    assert "  backend  auto, from " in text and "torch" in text
    assert "done" not in text


def test_dry_run_json_agrees_with_the_run(files: dict[str, Path], tmp_path: Path) -> None:
    """The plan is what the run then does: tiles, skipped tiles and chunks (a tissue mask
    over the top-left quarter of the scene skips tiles on a raster too)."""
    mask = tmp_path / "mask.tif"
    with rasterio.open(mask, "w", driver="GTiff", count=1, height=96, width=96,
                       dtype="uint8") as dst:
        data = np.zeros((1, 96, 96), dtype=np.uint8)
        data[0, :30, :30] = 1
        dst.write(data)
    out = tmp_path / "o.zarr"
    extra = ("--tissue", str(mask), "--write", "labels,probabilities", "--backend", "torch")
    dry = predict_cli(files, out, "--dry-run", "--json", *extra)
    assert dry.exit_code == 0, (dry.output, dry.exception)
    assert_nothing_written(out)
    plan = json.loads(dry.stdout)
    assert plan["backend"] == "torch" and plan["backend_candidates"] == ["torch"]
    assert plan["classes"] == 2 and plan["shape"] == [3, 96, 96]
    assert plan["variables"] == {
        "labels": {"dtype": "uint8", "shape": [96, 96], "bytes": 96 * 96},
        "probabilities": {"dtype": "uint8", "shape": [2, 96, 96], "bytes": 2 * 96 * 96},
    }
    assert plan["output_bytes"] == 3 * 96 * 96
    assert plan["memory"]["total"] == plan["memory"]["host"] + plan["memory"]["device"] > 0

    result = predict_cli(files, out, "--json", *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert plan["tiles_skipped"] == summary["tiles_skipped"] > 0
    assert plan["tiles_run"] == summary["tiles_minimum"] == summary["tiles_run"]
    assert plan["chunks"] == summary["chunks"]


def test_dry_run_resume_counts_the_chunks_an_unfinished_store_holds(files: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    import tilerun

    out = tmp_path / "o.zarr"
    options = tilerun.PredictOptions(tile=32, chunk=32, backend="torch")
    with pytest.raises(KeyboardInterrupt):
        tilerun.run(files["scene"], files["package"], out, options,
                    on_chunk=interrupt_after(3))
    partial = out.with_name(out.name + ".partial")
    before = settle(lambda: sorted(p.name for p in partial.rglob("*")))
    dry = predict_cli(files, out, "--dry-run", "--json", "--resume", "--tile", "32",
                      "--chunk", "32", "--backend", "torch")
    assert dry.exit_code == 0, (dry.output, dry.exception)
    plan = json.loads(dry.stdout)
    written = plan["chunks_written"]
    assert 3 <= written < plan["chunks"] == 9
    text = predict_cli(files, out, "--dry-run", "--resume", "--tile", "32", "--chunk", "32",
                       "--backend", "torch").stdout
    assert f"{written} already written in the unfinished store" in text
    assert sorted(p.name for p in partial.rglob("*")) == before  # a dry run wrote nothing
    assert json.loads(predict_cli(files, tmp_path / "new.zarr", "--dry-run", "--json",
                                  "--resume").stdout)["chunks_written"] is None


def test_dry_run_refuses_what_the_run_refuses(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    line = one_error_line(predict_cli(files, out, "--dry-run", "--backend", "onnxruntime",
                                      "--precision", "bf16"))
    assert line.startswith("error: --backend: onnxruntime cannot run")
    assert_nothing_written(out)

    out.mkdir()
    (out / "zarr.json").write_text("{}")
    line = one_error_line(predict_cli(files, out))
    assert line.startswith(f"error: {out}: ") and "--overwrite" in line
    # an existing output: the dry run plans all the same and says what the run refuses
    dry = predict_cli(files, out, "--dry-run")
    assert dry.exit_code == 0 and f"  exists   {out} " in dry.stdout, dry.output
    assert "--overwrite" in dry.stdout


# -- 6. --model demo and `tilerun model info` of the bundled model --------------------------------


def test_demo_names_the_bundled_model(files: dict[str, Path], tmp_path: Path) -> None:
    from tilerun.cli.predict import DEMO
    from tilerun.models.default import BUNDLED
    from tilerun.models.default import DEMO as LIBRARY_DEMO
    from tilerun.models.package import read_spec

    assert DEMO == LIBRARY_DEMO == read_spec(BUNDLED).name == "demo"
    result = invoke("predict", files["scene"], "-o", tmp_path / "o.zarr", "--model", "demo",
                    "--dry-run")
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"  model    demo ({BUNDLED}), 4 classes" in result.stdout


@pytest.mark.parametrize("args", [[], ["demo"]])
def test_model_info_describes_the_bundled_model(args: list[str]) -> None:
    result = invoke("model", "info", *args)
    assert result.exit_code == 0, (result.output, result.exception)
    first = result.stdout.splitlines()[0]
    assert first.startswith("demo (the bundled demo model, ")
    assert "takes 3-band (red, green, blue) uint8 images at 10 m" in first
    spec = json.loads(invoke("model", "info", *args, "--json").stdout)
    assert spec["name"] == "demo" and spec["bands"] == 3


# -- 7. inputs the default model does not suit: say to pass --model -------------------------------


def test_a_slide_with_the_default_model_says_pass_model(tmp_path: Path) -> None:
    from tilerun.sample import write_slide

    slide = tmp_path / "slide.tif"
    write_slide(slide, 512, 0.3, 0)
    out = tmp_path / "slide.zarr"
    line = one_error_line(invoke("predict", slide, "-o", out, "--quiet"))
    assert line.startswith(f"error: {slide}: is a whole-slide image; ")
    assert "pass --model" in line and "pixel size is in um" not in line
    assert_nothing_written(out)


@pytest.mark.parametrize(("count", "dtype", "problem"), [
    (1, "uint8", "has 1 band(s)"),
    (3, "uint16", "pixel type uint16"),
    (4, "uint8", "has 4 band(s)"),
])  # fmt: skip
def test_a_scene_the_default_model_does_not_suit_says_pass_model(
    tmp_path: Path, count: int, dtype: str, problem: str
) -> None:
    source = _raster(tmp_path / "scene.tif", count, dtype)
    out = tmp_path / "scene.zarr"
    line = one_error_line(invoke("predict", source, "-o", out, "--quiet"))
    assert line.startswith(f"error: {source}: {problem}"), line
    assert "pass --model with a model for this image" in line
    assert ("--bands" in line) == (count > 3)
    assert_nothing_written(out)


def test_a_scene_at_another_pixel_size_says_pass_model(tmp_path: Path) -> None:
    source = tmp_path / "landsat.tif"
    profile = {"driver": "GTiff", "count": 3, "height": 64, "width": 64, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": Affine(30.0, 0, 500_000.0, 0, -30.0, 5e6)}
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(np.zeros((3, 64, 64), dtype=np.uint8))
    line = one_error_line(invoke("predict", source, "-o", tmp_path / "o.zarr", "--quiet"))
    assert "pixel size 30 m is 3× the model's 10 m" in line and "pass --model" in line


def test_dry_run_plans_an_existing_output_and_says_a_run_would_stop(
        files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    assert predict_cli(files, out, "--quiet", "--backend", "torch").exit_code == 0
    before = sorted(p.name for p in out.rglob("*"))
    dry = predict_cli(files, out, "--dry-run")
    assert dry.exit_code == 0, (dry.output, dry.exception)
    assert f"  exists   {out} already exists; pass --overwrite" in dry.stdout, dry.stdout
    assert "  tiles    16 to run of 16" in dry.stdout
    assert sorted(p.name for p in out.rglob("*")) == before  # untouched
    run = predict_cli(files, out, "--quiet", "--backend", "torch")
    assert run.exit_code == 2 and "--overwrite" in run.stderr  # a run still refuses


def test_dry_run_lists_auto_backends_in_one_order_and_names_the_cached_choice(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tilerun.backends import select
    from tilerun.engine import dry_run

    monkeypatch.setenv("TILERUN_CACHE_DIR", str(tmp_path / "cache"))
    plans = []
    for chosen in (None, "torch", "onnxruntime"):
        for module in (select, dry_run):  # an earlier race's winner, as the cache gives it
            monkeypatch.setattr(module, "remembered", lambda model, target, c=chosen: c)
        dry = predict_cli(files, tmp_path / "o.zarr", "--dry-run", "--json")
        assert dry.exit_code == 0, (dry.output, dry.exception)
        plan = json.loads(dry.stdout)
        assert plan["backend_cached"] == chosen
        plans.append(plan["backend_candidates"])
    assert plans[0] == plans[1] == plans[2] and plans[0][-1] == "torch", plans
