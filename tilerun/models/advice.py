"""One warning for a model file that runs without what would make its answers right.

A foreign model (an ONNX file, a TorchScript archive) carries no normalisation and no class
names unless someone attached a spec; it still runs, but un-normalised inputs give wrong
answers with no error. So a run of a model file without normalisation says once what is
missing (class names too) and how to add it; a package with normalisation but no class names
was made deliberately and numbers its classes without a word. Models passed
as Python modules are the caller's business (their spec is an argument) and are not warned
about.
"""

from __future__ import annotations

from tilerun.errors import SpecWarning
from tilerun.models.handle import ModelHandle

__all__ = ["SpecWarning", "missing_spec"]


def missing_spec(model: ModelHandle) -> str | None:
    """The warning text for ``model``, or None when its spec says what matters."""
    if model.source != "file":
        return None
    spec = model.spec
    if spec.mean is not None or spec.scale != "none" or spec.embedded_normalisation:
        return None  # a spec was written for it; class names alone are optional
    missing = ["no input normalisation (pixels go in as they are)"]
    if spec.class_names is None:
        missing.append("no class names")
    return (f"{model.name}: the model has {' and '.join(missing)}; if it was trained on "
            "normalised inputs its answers are wrong: give a spec with --spec SPEC.json "
            "(`tilerun model inspect MODEL` prints a template; `tilerun model pack MODEL "
            "--spec SPEC.json -o OUT` attaches it for good)")
