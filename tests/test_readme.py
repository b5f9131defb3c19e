"""Every Python block in the README runs as written.

Each block runs in a fresh folder holding ``scene.tif`` (what ``tilerun sample scene.tif``
writes, smaller), with nothing defined by earlier blocks: a reader copies one block, not the
whole page. A block preceded by ``<!-- readme-test: skip (reason) -->`` is not run (a Dask
cluster at a made-up address); the reason is required.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import pytest

from tilerun.sample import write_scene

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: skip \((?P<why>[^)]+)\) -->\n)?```python\n(?P<code>.*?)```", re.S
)


def _blocks() -> list[tuple[int, str | None, str]]:
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 1, m["why"], m["code"]) for m in BLOCK.finditer(text)]


def test_the_readme_has_python_blocks_and_skips_few():
    blocks = _blocks()
    assert len(blocks) >= 4
    assert sum(why is not None for _, why, _ in blocks) <= 2


@pytest.mark.parametrize(("line", "why", "code"), _blocks(), ids=lambda v: str(v)[:12])
def test_a_readme_block_runs_as_written(line, why, code, tmp_path, monkeypatch):
    if why is not None:
        pytest.skip(f"README line {line}: {why}")
    write_scene(tmp_path / "scene.tif", 512, 512, seed=1)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # what a user's script shows
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    shown = [f"{w.category.__name__}: {w.message}" for w in caught
             if issubclass(w.category, (FutureWarning, DeprecationWarning, UserWarning))
             and not issubclass(w.category, PendingDeprecationWarning)]
    assert not shown, shown  # a block copied from the README prints no library warning
    assert os.listdir(tmp_path) != ["scene.tif"] or printed.getvalue(), \
        "a block that neither writes nor prints shows nothing"
