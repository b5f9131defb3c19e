"""Options renamed for clarity, whose old spelling still works for a while, with a note.

``tilerun predict`` named its output store ``-o/--output-path`` and the variables to write
``--output``: every new user typed ``--output scene.zarr``. The variables are now ``--write``;
``--output logits,labels`` still works (one deprecation line), and ``--output scene.zarr`` is
one error line that says which option names the store.
"""

from __future__ import annotations

import warnings

from tilerun.errors import OptionError, TilerunWarning

#: what --write takes (spelled here so that ``--help`` needs no Zarr)
VARIABLES = ("logits", "labels", "probabilities")


def chosen_variables(write: str | None, output: str | None, default: str) -> str:
    """The variables to write, from ``--write`` or the old ``--output`` (``default`` when
    neither is given)."""
    if output is None:
        return write if write is not None else default
    names = [v.strip() for v in output.split(",") if v.strip()]
    if not names or not set(names) <= set(VARIABLES):
        raise OptionError("--output", f"{output} is not a list of variables: the output store "
                          f"is -o/--output-path {output}; the variables to write are --write "
                          f"(any of {', '.join(VARIABLES)}), which --output used to be")
    if write is not None:
        raise OptionError("--output", "give the variables once, with --write (--output is "
                          "its old name)")
    warnings.warn("--output (the variables to write) is now --write; --output will be removed",
                  TilerunWarning, stacklevel=2)
    return output
