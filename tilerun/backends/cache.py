"""The conversion cache: converted models keyed by what they were converted from.

A torch model converted to ONNX is written once, to ``<cache>/backends/<key>.onnx``, so the
second run starts at once. ``key`` hashes everything the converted file depends on: the
weights (every tensor's bytes), the module's code as printed by ``repr`` (which names every
layer), the spec, the input shape (bands, tile edge) and the converter's version. ONNX
Runtime and OpenVINO share the ONNX file; OpenVINO keeps its own compiled blobs (keyed by
OpenVINO) in ``<cache>/openvino``, and ``torch.compile`` its kernels in ``<cache>/inductor``.

``<cache>`` is ``$TILERUN_CACHE_DIR``, else ``$XDG_CACHE_HOME/tilerun``, else
``~/.cache/tilerun``. Files are written under a temporary name and renamed into place, so
concurrent runs (cluster workers on one machine) never read half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from tilerun._version import __version__
from tilerun.models import ModelHandle


def cache_dir(kind: str) -> Path:
    """``<cache>/<kind>``, created on first use."""
    root = os.environ.get("TILERUN_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "tilerun")
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


#: weights digests by module, with the tensors' version counters (bumped by every in-place
#: change, e.g. training), so a module is hashed once until its weights change (a 31 M-parameter
#: U-Net takes about 0.2 s)
_DIGESTS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], bytes]] = \
    weakref.WeakKeyDictionary()


def model_key(model: ModelHandle, *parts: object) -> str:
    """A 32-hex-digit digest of the model's weights, code, spec and ``parts``."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (__version__, torch.__version__, model.spec.to_json(), *parts):
        digest.update(repr(part).encode())
    module = model.module
    versions = tuple(t._version for t in module.state_dict().values())
    known = _DIGESTS.get(module)
    if known is None or known[0] != versions:
        known = _DIGESTS[module] = (versions, _module_digest(module))
    digest.update(known[1])
    return digest.hexdigest()


def _module_digest(module: nn.Module) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(module).__qualname__.encode())
    digest.update(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.digest()


def cached_file(path: Path, write: Callable[[Path], None]) -> tuple[Path, bool]:
    """``path`` if it exists, else ``write(temporary)`` renamed to ``path``.

    Returns the path and whether it was already there (a cache hit).
    """
    if path.is_file():
        return path, True
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path, False
