"""Tiny inline SVG charts for the HTML report (no plotting library needed).

Each function returns one ``<svg>`` element as text, sized in CSS pixels, with its labels
escaped. Bars are scaled to the largest value shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR = "#4c78a8"
LINE = "#e45756"
AXIS = "#444"


def histogram(counts: Sequence[float], lo: float, hi: float, *, expected: Sequence[float] |
              None = None, width: int = 360, height: int = 150, caption: str = "") -> str:
    """Bars of ``counts`` over equal bins of ``[lo, hi)``, with ``expected`` (same bins) drawn
    as a line over them when given."""
    pad_l, pad_b, pad_t = 8, 18, 16
    inner_w, inner_h = width - 2 * pad_l, height - pad_b - pad_t
    n = max(len(counts), 1)
    top = max([*counts, *(expected or ()), 1e-12])
    bw = inner_w / n
    parts = [_open(width, height, caption)]
    for k, c in enumerate(counts):
        h = inner_h * c / top
        parts.append(f'<rect x="{pad_l + k * bw:.2f}" y="{pad_t + inner_h - h:.2f}" '
                     f'width="{max(bw - 0.5, 0.5):.2f}" height="{h:.2f}" fill="{BAR}"/>')
    if expected is not None:
        points = " ".join(f"{pad_l + (k + 0.5) * bw:.2f},{pad_t + inner_h * (1 - e / top):.2f}"
                          for k, e in enumerate(expected))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{LINE}" '
                     'stroke-width="1.5"/>')
    base = pad_t + inner_h
    parts.append(f'<line x1="{pad_l}" y1="{base}" x2="{width - pad_l}" y2="{base}" '
                 f'stroke="{AXIS}"/>')
    parts.append(_text(pad_l, height - 4, _num(lo), "start"))
    parts.append(_text(width - pad_l, height - 4, _num(hi), "end"))
    parts.append(_text(pad_l, 12, caption, "start"))
    parts.append("</svg>")
    return "".join(parts)


def bars(names: Sequence[str], values: Sequence[float], colours: Sequence[str], *,
         width: int = 360, row: int = 20, caption: str = "") -> str:
    """Horizontal bars of fractions ``values`` (0 … 1), one row per name, labelled in %."""
    label_w, pad = 110, 16
    height = pad + row * len(values) + 4
    inner = width - label_w - 56
    parts = [_open(width, height, caption), _text(0, 12, caption, "start")]
    for k, (name, value, colour) in enumerate(zip(names, values, colours, strict=True)):
        y = pad + k * row
        w = inner * max(min(value, 1.0), 0.0)
        parts.append(_text(label_w - 6, y + row - 6, name, "end"))
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.2f}" height="{row - 6}" '
                     f'fill="{escape(colour)}" stroke="{AXIS}" stroke-width="0.3"/>')
        parts.append(_text(label_w + w + 4, y + row - 6, f"{100 * value:.1f} %", "start"))
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, caption: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(caption)}" '
            'font-family="sans-serif" font-size="11">')


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return (f'<text x="{x:.2f}" y="{y:.2f}" text-anchor="{anchor}" fill="{AXIS}">'
            f"{escape(text)}</text>")


def _num(value: float) -> str:
    return f"{value:.4g}"
