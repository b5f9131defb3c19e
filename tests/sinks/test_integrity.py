"""What claims to be finished is what was asked for: chunk checksums checked on resume, before
publishing and by ``tilerun info --verify``; a changed input never mixed into a resume; a run
that lost its lock publishes nothing. Each case through the CLI, in a folder and in (moto's) S3.
"""

# ruff: noqa: F811  (the shared fixtures are imported by name, then taken as arguments)
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import interrupt_after, settle
from integrity_fixtures import (  # noqa: F401  (fixtures)
    ARGS,
    OPTIONS,
    endpoint,
    files,
    logits,
    one_error_line,
    place,
    predict,
    read_key,
    reference,
    rewrite_keeping_stat,
    truncate,
    unfinished,
    write_key,
)

import tilerun
from tilerun.cli import main
from tilerun.sinks import completed_output
from tilerun.sinks.integrity import SUMS
from tilerun.sinks.layout.store import DONE, read_chunks_done
from tilerun.sinks.lease import LEASE_KEY, LOCK_NAME
from tilerun.sinks.objects import object_url


def _interrupted(files, out: str, chunks: int = 4, scene: str = "scene") -> np.ndarray:
    """An unfinished store of ``out`` with ``chunks`` chunks written; its chunk marks."""
    with pytest.raises(KeyboardInterrupt):
        tilerun.run(files[scene], files["package"], out, tilerun.PredictOptions(**OPTIONS),
                    on_chunk=interrupt_after(chunks))
    store = unfinished(out)
    done = settle(lambda: [] if (d := read_chunks_done(_target(store))) is None
                  else [str(d.sum())])
    assert done
    marks = read_chunks_done(_target(store))
    assert marks is not None and 0 < marks.sum() < marks.size
    return marks


def _target(store: str) -> object:
    from tilerun.sinks.layout.store import open_target

    return open_target(store) if object_url(store) else Path(store)


def test_a_rewritten_input_is_refused_by_resume_and_never_mixed(files, place, tmp_path):
    out = place("rewritten.zarr")
    scene = tmp_path / "scene.tif"
    scene.write_bytes(files["scene"].read_bytes())
    local = {**files, "scene": scene}
    marks = _interrupted(local, out)
    rewrite_keeping_stat(scene, files["twin"])  # cp -p: same size, same mtime, new pixels
    before = read_key(unfinished(out), f"{DONE}/c/0/0")
    line = one_error_line(predict(local, out, "--resume"), "different run",
                          "the input's content differs", "scene.tif was rewritten")
    assert "drop --resume" in line
    assert read_key(unfinished(out), f"{DONE}/c/0/0") == before  # nothing touched
    assert np.array_equal(read_chunks_done(_target(unfinished(out))), marks)
    fresh = predict(local, out)  # without --resume: started afresh on the new pixels
    assert fresh.exit_code == 0, fresh.output
    np.testing.assert_allclose(logits(out), reference(files, "twin"), atol=1e-6)


def test_damaged_chunks_are_written_again_on_resume(files, place):
    out = place("damaged.zarr")
    marks = _interrupted(files, out)
    store = unfinished(out)
    kept = [(int(i), int(j)) for i, j in np.argwhere(marks)]
    (a, b), (c, d) = kept[0], kept[-1]
    truncate(store, f"logits/c/0/{a}/{b}")  # a kill inside a write
    write_key(store, f"{SUMS}/c/{c}/{d}/0", None)  # a chunk with no checksum (copied early)
    resumed = predict(files, out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "failed verification and are written again" in resumed.stderr
    assert f"logits chunk {(a, b)} (damaged" in resumed.stderr
    np.testing.assert_allclose(logits(out), reference(files), atol=1e-6)
    record = completed_output(out)
    assert record is not None and record["chunks_resumed"] == len(kept) - 2
    verified = CliRunner().invoke(main, ["info", out, "--verify"])
    assert verified.exit_code == 0 and "9 chunk(s) match their checksums" in verified.output


@pytest.mark.parametrize("zarr_format", ["3", "2"])
def test_info_verify_names_bad_chunks_of_a_finished_store(files, place, zarr_format):
    out = place(f"finished-v{zarr_format}.zarr")
    assert predict(files, out, "--zarr-format", zarr_format,
                   "--write", "logits,labels").exit_code == 0
    good = CliRunner().invoke(main, ["info", out, "--verify"])
    assert good.exit_code == 0, good.output
    v3 = zarr_format == "3"
    truncate(out, "logits/c/0/1/2" if v3 else "logits/0.1.2")
    labels = "labels/c/2/0" if v3 else "labels/2.0"
    data = bytearray(read_key(out, labels) or b"")
    data[-8:] = bytes(8)  # a few flipped bytes: a bad sector
    write_key(out, labels, bytes(data))
    line = one_error_line(CliRunner().invoke(main, ["info", out, "--verify"]),
                          "2 of 9 chunk(s) fail verification", "logits chunk (1, 2)",
                          "labels chunk (2, 0)")
    assert out in line


def _lock_path(out: str) -> tuple[str, str]:
    return (unfinished(out), LEASE_KEY) if object_url(out) else (unfinished(out), LOCK_NAME)


def test_a_run_whose_lock_is_deleted_stops_and_the_next_run_publishes_alone(files, place,
                                                                            tmp_path):
    from tilerun.sample import write_scene

    big = tmp_path / "big.tif"
    write_scene(big, 512, 512, seed=4)
    out = place("lock.zarr")
    command = [sys.executable, "-m", "tilerun", "predict", str(big), "-o", out, "--model",
               str(files["package"]), *ARGS]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    store, lock = _lock_path(out)
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:
        done = read_chunks_done(_target(store)) if read_key(store, "zarr.json") else None
        if done is not None and done.sum() >= 3:
            break
        time.sleep(0.02)
    assert first.poll() is None, "the first run must still be running"
    write_key(store, lock, None)  # a clean-up script removes the lock
    second = CliRunner().invoke(main, ["predict", str(big), "-o", out, "--model",
                                       str(files["package"]), *ARGS, "--tile", "64"])
    code, err = first.wait(timeout=300), first.stderr.read()  # type: ignore[union-attr]
    assert second.exit_code == 0, second.output
    assert code == 2 and "Traceback" not in err, err
    assert "lost its lock while writing" in err and "nothing published" in err
    record = completed_output(out)
    assert record is not None and record["tile"] == 64 and record["chunks_resumed"] == 0
    clean = files["root"] / f"clean-{time.time_ns()}.zarr"
    tilerun.run(big, files["package"], clean, tilerun.PredictOptions(**{**OPTIONS, "tile": 64}))
    np.testing.assert_allclose(logits(out), logits(clean), atol=1e-6)


def test_a_rewritten_object_input_is_refused_by_resume(files, place):
    from tilerun.sinks.objects import ObjectLocation

    out = place("remote-input.zarr")
    if not object_url(out):
        pytest.skip("an input in object storage is known by its e-tag (the S3 case)")
    folder = ObjectLocation(out.rsplit("/", 1)[0] + "/in")
    folder.put("scene.tif", files["scene"].read_bytes())
    remote = {**files, "scene": f"{folder.url}/scene.tif"}
    _interrupted(remote, out)  # type: ignore[arg-type]
    folder.put("scene.tif", files["twin"].read_bytes())  # the same size, a new e-tag
    one_error_line(predict(remote, out, "--resume"),  # type: ignore[arg-type]
                   "the input's content differs", "scene.tif was rewritten")


def test_publication_needs_every_chunk_written_checksummed_and_ours():
    from tilerun.sinks.integrity import PRESENT, unpublishable

    ours, theirs, kept_by = int(PRESENT) | 7, int(PRESENT) | 9, int(PRESENT) | 5
    rows = np.zeros((2, 2, 2), np.uint64)
    rows[..., 0], rows[..., 1] = ours, int(PRESENT) | 123
    rows[0, 0, 0] = kept_by
    done = np.ones((2, 2), bool)
    assert unpublishable(done, rows, ours, {(0, 0): kept_by}) is None
    assert "were written by another run" in str(unpublishable(done, rows, ours, {}))
    rows[1, 1, 0] = theirs  # a run that lost its lock wrote a chunk meanwhile
    assert "(1, 1)" in str(unpublishable(done, rows, ours, {(0, 0): kept_by}))
    rows[1, 1] = (ours, 0)
    assert unpublishable(done, rows, ours, {(0, 0): kept_by}) == "1 chunk(s) have no checksum"
    done[0, 1] = False
    assert unpublishable(done, rows, ours, {}) == "1 chunk(s) are not recorded as written"
    assert "no chunk checksums" in str(unpublishable(np.ones((2, 2), bool), None, ours, {}))
