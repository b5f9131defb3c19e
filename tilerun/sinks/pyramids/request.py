"""Which viewer pyramids a run asks its sink for: a plain value, so the engine needs to know
nothing of where or how the sink writes them (the sink owns its store, see
:meth:`tilerun.sinks.base.Sink.finalize`)."""

from __future__ import annotations

from dataclasses import dataclass

#: the pyramids a sink can be asked for
PYRAMID_KINDS = ("labels", "probabilities")


@dataclass(frozen=True)
class PyramidRequest:
    """The OME-NGFF pyramids to add to the output before it is published.

    ``kinds``: ``labels`` (from the ``labels`` variable) and/or ``probabilities`` (from the
    ``logits``); ``pixel_size`` ``(sy, sx)`` and ``unit`` place them (pixels, no unit, when
    None); ``probabilities_name`` is the probability pyramid's group (``probabilities``
    unless that is the name of a stored variable).
    """

    kinds: tuple[str, ...]
    pixel_size: tuple[float, float] | None = None
    unit: str | None = None
    probabilities_name: str = "probabilities"

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in PYRAMID_KINDS]
        if unknown:
            raise ValueError(f"unknown pyramid kind(s) {unknown}; choose from {PYRAMID_KINDS}")
