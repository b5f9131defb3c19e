"""The fixtures and helpers of the CLI message tests (``test_cli_messages.py``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tilerun.cli import main

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import scene_and_package
except ImportError:  # pragma: no cover
    from conftest import scene_and_package  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 96² scene, a 2-class package, and a finished output with labels (for exports)."""
    root = tmp_path_factory.mktemp("messages")
    made = scene_and_package(root)
    store = root / "done.zarr"
    result = invoke("predict", made["scene"], "-o", store, "--model", made["package"],
                    "--tile", 32, "--chunk", 64, "--write", "logits,labels", "--quiet")
    assert result.exit_code == 0, result.output
    return {**made, "store": store}


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def predict(files: dict[str, Path], source: object, out: object, *extra: object) -> Result:
    return invoke("predict", source, "-o", out, "--model", files["package"], "--tile", 32,
                  "--chunk", 64, "--quiet", *extra)


def one_error(result: Result, *words: str) -> str:
    """The one error line (exit 2, no traceback), which must contain each of ``words``."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def warnings_of(result: Result) -> list[str]:
    """The run succeeded; its ``warning:`` lines (stderr holds nothing else)."""
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines), result.stderr
    return lines


def nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
