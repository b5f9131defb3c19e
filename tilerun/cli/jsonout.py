"""``--json`` output: one JSON object on one line, valid JSON (NaN and infinities are null)."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None, recursively: Python's
    ``json`` would write them as ``NaN``/``Infinity``, which JSON parsers refuse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_line(value: Any) -> str:
    """One line of strict JSON; values JSON has no type for (paths …) become strings."""
    return json.dumps(finite(value), default=str, allow_nan=False)
