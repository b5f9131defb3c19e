"""One root error with named subclasses, so callers catch exactly what they mean.

Every message is one line that names the file (or option) and the problem; the CLI prints it
and exits with code 2.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what a
    one-line error quotes from a library's multi-line message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def printable(text: object) -> str:
    """``text`` with control characters escaped (``new\\nline.tif``), as one line: a file
    name may hold a newline or a tab, which would break a one-line message in two."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


class TilerunError(Exception):
    """Root of every error tilerun raises on purpose."""

    def __init__(self, subject: object, problem: str) -> None:
        self.subject = str(subject)
        self.problem = problem
        super().__init__(f"{printable(self.subject)}: {printable(problem)}")


class InputError(TilerunError):
    """The input image is missing, unreadable or not a raster."""


class UnsupportedDtypeError(InputError):
    """The input's pixel type cannot be fed to a model (complex, bool …)."""


class BandError(InputError):
    """Band selection or band count does not fit the model."""


class PixelSizeError(InputError):
    """The input's pixel size differs from the model's beyond the tolerance."""


class ModelError(TilerunError):
    """The model file or object cannot be loaded or used."""


class OptionError(TilerunError):
    """An option value is invalid (tile size, overlap, blend name …)."""


class OutputError(TilerunError):
    """The output cannot be written where asked."""


class OutputExistsError(OutputError):
    """The output exists and overwriting was not asked for."""


class NonFiniteError(TilerunError):
    """The model produced NaN or infinite logits for a tile."""


# -- warnings ----------------------------------------------------------------------------------
#
# One root, so that users filter all of tilerun's warnings, or one kind, with the standard
# machinery, e.g. ``warnings.simplefilter("ignore", tilerun.errors.DriftWarning)`` or
# ``python -W ignore::tilerun.errors.TilerunWarning``:
#
#   TilerunWarning
#   ├── InputWarning     the input: pixel size unknown, slide resolution, tissue mask shape
#   │   └── DriftWarning     its pixels are unlike the model's training data
#   ├── OutputWarning    the output: no viewer pyramid, a unit OME-NGFF does not list
#   ├── BackendWarning   a backend asked for or preferred was not used (fell back)
#   └── SpecWarning      a model file runs without normalisation or class names


class TilerunWarning(UserWarning):
    """Something the user should know that does not stop the run."""


class InputWarning(TilerunWarning):
    """Something about the input that may make the result less useful."""


class DriftWarning(InputWarning):
    """The input's pixels are unlike the model's training data (see
    :mod:`tilerun.report.drift`)."""


class OutputWarning(TilerunWarning):
    """Something about the output: a part of it not written, or metadata viewers may ignore."""


class BackendWarning(TilerunWarning):
    """A backend was asked for or preferred but not used (the message says why)."""


class SpecWarning(TilerunWarning):
    """A model file runs without normalisation or class names (the message says how to add
    them: :mod:`tilerun.models.advice`)."""


#: Held while tilerun changes the process's warning filters (see :func:`ignoring`).
_FILTERS = threading.RLock()


@contextlib.contextmanager
def ignoring(*messages: str, category: type[Warning] = Warning) -> Iterator[None]:
    """Ignore, while the block runs, warnings of ``category`` whose message starts with one of
    ``messages`` (all of them when none are given).

    Warning filters are process-wide, and ``warnings.catch_warnings`` puts back on exit the list
    it saw on entry: two threads inside it at once undo each other's filters. A job finishing
    one scene (Zarr's notes about the lock file while it consolidates) while it opens the next
    (the readers' notes about a damaged file) did so. Every tilerun section that changes the
    filters goes through here, one at a time (re-entrant: such sections may nest).
    """
    with _FILTERS, warnings.catch_warnings():
        if not messages:
            warnings.simplefilter("ignore", category)
        for message in messages:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
