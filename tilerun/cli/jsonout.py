"""``--json`` output: one JSON object on one line, valid JSON (NaN and infinities are null)."""

from __future__ import annotations

import json
from typing import Any


def json_line(value: Any) -> str:
    """One line of strict JSON; values JSON has no type for (paths …) become strings."""
    from tilerun.report.record import plain

    return json.dumps(plain(value), default=str, allow_nan=False)
