"""Optional dependencies: what each extra installs, and one error line when one is missing.

A plain ``pip install tilerun`` installs what the default path uses (reading rasters and
slides, running a model on torch or ONNX Runtime, writing a local Zarr store). What only an
option uses is an extra, so the default environment stays small (about half a gigabyte
beside torch instead of 1.1 GB):

* ``vector``: polygon exports (GeoPackage, GeoParquet, FlatGeobuf, GeoJSON, QuPath): shapely,
  scipy (connected components), pyogrio (GDAL's vector drivers) and pyarrow;
* ``cloud``: outputs in object storage (``s3://``, ``gs://``, ``az://``): obstore;
* ``openvino``: the OpenVINO backend (bf16 on CPUs that have it);
* ``cluster``: runs on Dask clusters (``--workers``, ``--scheduler tcp://…``): distributed. Not
  only for size: where distributed is installed, dask imports it while it builds any graph
  (its shuffle barrier type), 0.4-1.3 s of every local run's start-up;
* ``all``: every extra above.

Without an extra, the option that needs it stops before any work with one line that gives
the exact command, ``pip install 'tilerun[vector]'``; ``--backend auto`` simply does not try
an uninstalled backend.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from tilerun.errors import TilerunError

#: top-level module -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "shapely": "vector",
    "scipy": "vector",
    "pyogrio": "vector",
    "pyarrow": "vector",
    "obstore": "cloud",
    "openvino": "openvino",
    "distributed": "cluster",
}
#: extra -> its modules, in the order they are checked
MODULES: dict[str, tuple[str, ...]] = {
    extra: tuple(m for m, e in EXTRA_OF.items() if e == extra)
    for extra in dict.fromkeys(EXTRA_OF.values())
}
#: what each extra is for, as an error line says it
PURPOSE = {
    "vector": "a vector export",
    "cloud": "object storage",
    "openvino": "the OpenVINO backend",
    "cluster": "a Dask cluster",
}


class MissingExtraError(TilerunError):
    """An option needs a package that only an extra installs, and it is not installed."""


def install_hint(module: str) -> str:
    """``pip install 'tilerun[extra]'`` for the extra that installs ``module`` (``pip install
    module`` for a default dependency, which only a broken environment lacks)."""
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top)
    return f"pip install 'tilerun[{extra}]'" if extra else f"pip install {top}"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a module set to None in
    ``sys.modules``, as tests do to simulate its absence, counts as missing)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, subject: object) -> None:
    """Raise :class:`MissingExtraError` about ``subject`` (the file or URL the option acts on)
    unless every module of ``extra`` is installed; call it before any work."""
    for module in MODULES[extra]:
        if not installed(module):
            raise MissingExtraError(
                subject, f"{PURPOSE[extra]} needs the '{extra}' extra ({module} is not "
                f"installed): {install_hint(module)}")


def optional(module: str, subject: object) -> ModuleType:
    """Import ``module`` (from an extra), or raise :class:`MissingExtraError` that gives the
    ``pip install`` to run."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRA_OF[module.split(".")[0]]
        raise MissingExtraError(
            subject, f"{PURPOSE[extra]} needs the '{extra}' extra ({module} is not installed): "
            f"{install_hint(module)}") from None


def store_errors() -> tuple[type[BaseException], ...]:
    """The object store's error type, for ``except`` clauses, without importing obstore: when
    it was never imported, nothing can have raised its errors (an empty tuple catches none)."""
    if sys.modules.get("obstore") is None:
        return ()
    from obstore.exceptions import BaseError

    return (BaseError,)
