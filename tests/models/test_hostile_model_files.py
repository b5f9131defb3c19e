"""Model files that are damaged or not what they seem: classified by content, and every
loader failure one :class:`ModelError` line."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from tilerun.errors import ModelError
from tilerun.models import load_model, read_spec, read_state_dict
from tilerun.models.loading import model_format


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_real_archives_are_told_apart_by_their_members(tmp_path: Path) -> None:
    conv = nn.Conv2d(3, 2, 1).eval()
    script = tmp_path / "script.pt2"  # TorchScript under torch.export's suffix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(conv), str(script))
    program = tmp_path / "program.pt"  # torch.export under a checkpoint's suffix
    torch.export.save(torch.export.export(conv, (torch.zeros(1, 3, 4, 4),)), str(program))
    checkpoint = tmp_path / "checkpoint.pt2"
    torch.save(conv.state_dict(), checkpoint)
    assert model_format(script) == "torchscript"
    assert model_format(program) == "export"
    assert model_format(checkpoint) == "pickle"


@pytest.mark.parametrize(("members", "message"), [
    ({"x/constants.pkl": b"junk"}, "is not a TorchScript archive tilerun can read"),
    ({"x/code/m.py": b"junk", "x/version": b"3"}, "is not a TorchScript archive"),
    ({"x/readme": b"hi"}, "is a zip archive but not a TorchScript archive"),
])
def test_junk_zips_are_one_line_errors(tmp_path: Path, members: dict[str, bytes],
                                       message: str) -> None:
    path = _zip(tmp_path / "m.pt", members)
    for allow in (False, True):
        with pytest.raises(ModelError, match=message) as refused:
            load_model(path, allow_pickle=allow)
        assert "\n" not in str(refused.value) and "Could this error" not in str(refused.value)


def test_a_damaged_export_program_is_a_model_error(tmp_path: Path) -> None:
    path = _zip(tmp_path / "m.pt2", {"x/archive_format": b"pt2", "x/models/model.json": b"{"})
    with pytest.raises(ModelError, match=r"model.json is not valid JSON"):
        load_model(path)
    with pytest.raises(ModelError, match=r"is not a torch\.export program tilerun can read"):
        load_model(path, allow_pickle=True)


@pytest.mark.parametrize("length", [2**60, 2**40, 10**9])
def test_an_absurd_safetensors_header_length_is_called_corrupt(tmp_path: Path,
                                                                length: int) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(length.to_bytes(8, "little") + b'{"__metadata__": {}}')
    for load in (read_spec, read_state_dict, load_model):
        with pytest.raises(ModelError, match="safetensors header is corrupt"):
            load(path)  # type: ignore[operator]
    with pytest.raises(ModelError, match="safetensors header is corrupt"):
        load_model(path, allow_pickle=True)
