"""The HTML run report: one self-contained page (images as base64 PNG, charts as inline SVG).

It shows, from a finished output (never loading its raster):

* the **quicklook** of the labels (:func:`tilerun.report.quicklook.write_quicklook`);
* the **entropy map** (:mod:`tilerun.report.entropy_map`), dark = confident, yellow = unsure;
* per input band, the **histogram** of the run's pixels against the training distribution the
  spec describes, drawn as the normal ``N(μ_t, σ_t²)`` expected over the same bins,
  ``n · (Φ((e_{k+1} − μ_t)/σ_t) − Φ((e_k − μ_t)/σ_t))`` for ``n`` counted pixels (the spec holds
  only these two moments), with the drift table;
* the **class fractions**, the entropy histogram and the timing.
"""

from __future__ import annotations

import base64
import math
import tempfile
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from tilerun.classes.colours import PALETTE
from tilerun.errors import OutputError, OutputExistsError, TilerunError
from tilerun.report import svg
from tilerun.report.entropy_map import entropy_map
from tilerun.report.png import encode_png
from tilerun.report.quicklook import write_quicklook
from tilerun.report.record import BandReport, RunReport
from tilerun.report.stored import open_output, read_report
from tilerun.report.text import fmt, pct, summary_rows, timing_rows
from tilerun.sinks.objects import object_url
from tilerun.words import ordinal

#: viridis at five stops, interpolated into the entropy colour map
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))

STYLE = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:80em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}
.warn{color:#b00;font-weight:bold}.grid{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:.85em;color:#555}
img{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}
"""


def default_html_path(store: str | Path) -> Path:
    """``OUT.zarr`` → ``OUT.report.html`` beside it; for a store in object storage, in the
    current folder."""
    url = object_url(store)
    path = Path(urlsplit(url).path) if url else Path(store)
    return (Path() if url else path.parent) / (path.stem + ".report.html")


def _name(store: str | Path) -> str:
    """The store's name: a URL's last part, or a path's."""
    url = object_url(store)
    return Path(urlsplit(url).path).name if url else Path(store).name


def write_html(store: str | Path, html_path: str | Path, *, overwrite: bool = False,
               max_size: int = 512) -> Path:
    """Write the page for the finished output ``store``; refuses to replace an existing file
    unless ``overwrite``. ``max_size``: longest edge of the two images in pixels."""
    target = Path(html_path)
    _check_target(target, overwrite)
    report, record = read_report(store)
    group = open_output(store)
    quicklook, colours = _quicklook(store, max_size, record, report)
    emap = entropy_map(group, report.output.activation, max_size)
    page = _page(_name(store), report, record, quicklook, colours,
                 None if emap is None else (_png(_colour_entropy(emap.values)), emap.step))
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OutputError(target, f"cannot write ({err.strerror or err})") from err
    return target


def _check_target(target: Path, overwrite: bool) -> None:
    if target.is_dir():
        raise OutputError(target, "is a folder, not an HTML file")
    if target.exists() and not overwrite:
        raise OutputExistsError(target, "already exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise OutputError(target, f"parent folder {target.parent} does not exist")


def _quicklook(store: str | Path, max_size: int, record: dict[str, Any],
               report: RunReport) -> tuple[tuple[str, int] | None, tuple[str, ...]]:
    """The quicklook (base64 PNG, step) and the class colours it used; None without labels
    or logits to colour."""
    fallback = record.get("class_colours") or PALETTE
    colours = tuple(str(c) for c in fallback)
    try:
        with tempfile.TemporaryDirectory() as folder:
            look = write_quicklook(store, Path(folder) / "quicklook.png", max_size)
            data = (Path(folder) / "quicklook.png").read_bytes()
    except TilerunError:
        return None, colours
    return (base64.b64encode(data).decode("ascii"), look.step), look.colours or colours


def _colour_entropy(values: np.ndarray) -> np.ndarray:
    """``(h, w, 4)`` RGBA: entropy 0 … 1 through :data:`VIRIDIS`; NaN transparent."""
    stops = np.asarray(VIRIDIS, np.float64)
    at = np.linspace(0.0, 1.0, len(stops))
    lut = np.zeros((256, 4), np.uint8)
    levels = np.linspace(0.0, 1.0, 256)
    for c in range(3):
        lut[:, c] = np.round(np.interp(levels, at, stops[:, c]))
    lut[:, 3] = 255
    nodata = np.isnan(values)
    index = np.round(np.nan_to_num(values) * 255).clip(0, 255).astype(np.uint8)
    rgba = lut[index]
    rgba[nodata] = 0
    return rgba


def _png(rgba: np.ndarray) -> str:
    return base64.b64encode(encode_png(rgba)).decode("ascii")


def expected_counts(band: BandReport) -> list[float] | None:
    """The training normal's expected count per histogram bin (module docstring); None
    without training statistics."""
    if band.train_mean is None or band.train_std is None or band.train_std <= 0:
        return None
    edges = np.linspace(band.hist_lo, band.hist_hi, len(band.hist) + 1)
    z = (edges - band.train_mean) / (band.train_std * math.sqrt(2.0))
    cdf = 0.5 * (1.0 + np.array([math.erf(v) for v in z]))
    return (band.pixels * np.diff(cdf)).tolist()


def _page(name: str, report: RunReport, record: dict[str, Any],
          quicklook: tuple[str, int] | None, colours: tuple[str, ...],
          entropy: tuple[str, int] | None) -> str:
    title = f"tilerun report: {name}"
    body = [f"<h1>{escape(title)}</h1>", _table(["", ""], summary_rows(report, record))]
    if report.drifted_bands:
        body.append(f'<p class="warn">Input drift in {escape(", ".join(report.drifted_bands))}'
                    f" (drift &gt; {report.drift_threshold:g}): the input is unlike the "
                    "model's training data; predictions may be unreliable.</p>")
    figures = []
    if quicklook is not None:
        figures.append(_figure(quicklook[0], f"labels (every {ordinal(quicklook[1])} pixel)"))
    if entropy is not None:
        figures.append(_figure(entropy[0], f"normalised entropy, 0 dark … 1 yellow (every "
                               f"{ordinal(entropy[1])} pixel; transparent: nodata)"))
    body += ["<h2>Maps</h2>", f'<div class="grid">{"".join(figures) or "none stored"}</div>']
    body += ["<h2>Input bands</h2>", _bands_table(report), '<div class="grid">']
    for band in report.bands:
        body.append(svg.histogram(band.hist, band.hist_lo, band.hist_hi,
                                  expected=expected_counts(band),
                                  caption=f"{band.name}: run (bars) vs training normal (line)"))
    body.append("</div>")
    out = report.output
    names = [c.name for c in out.classes]
    fractions = [c.fraction or 0.0 for c in out.classes]
    palette = [colours[k % len(colours)] for k in range(len(names))]
    body += ["<h2>Output</h2>", '<div class="grid">',
             svg.bars(names, fractions, palette, caption="class fractions (valid pixels)"),
             svg.histogram(out.entropy_hist, 0.0, 1.0, caption="normalised entropy"), "</div>",
             _table(["class", "pixels", "fraction"],
                    [[c.name, f"{c.pixels:,}", pct(c.fraction)] for c in out.classes])]
    body += ["<h2>Timing</h2>", _table(["", ""], timing_rows(report))]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
            f"{escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _bands_table(report: RunReport) -> str:
    rows = []
    for b in report.bands:
        flag = '<span class="warn">drifted</span>' if b.drifted else "ok"
        rows.append([escape(b.name), f"{b.pixels:,}", fmt(b.mean), fmt(b.std), fmt(b.min),
                     fmt(b.max), fmt(b.train_mean), fmt(b.train_std), fmt(b.mean_shift, ".2f"),
                     fmt(b.std_ratio, ".2f"), fmt(b.drift, ".2f"), flag])
    head = ["band", "pixels", "mean", "std", "min", "max", "train mean", "train std",
            "mean shift (σ)", "std ratio", "drift", ""]
    return _table(head, rows, escaped=True)


def _table(head: list[str], rows: list[list[str]], escaped: bool = False) -> str:
    cell = (lambda v: v) if escaped else escape
    th = "".join(f"<th>{escape(h)}</th>" for h in head) if any(head) else ""
    trs = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table>{'<tr>' + th + '</tr>' if th else ''}{trs}</table>"


def _figure(png: str, caption: str) -> str:
    return (f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")
