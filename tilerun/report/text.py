"""The run report as rows of text: rich tables for the terminal, the same rows for HTML."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tilerun.report.record import RunReport


def summary_rows(report: RunReport, record: dict[str, Any]) -> list[list[str]]:
    """What ran on what: input, model, pixels, coverage of the statistics."""
    rows = [["input", str(record.get("input", "?"))], ["model", str(record.get("model", "?"))],
            ["valid output pixels", f"{report.output.pixels:,}"],
            ["chunks measured", f"{report.chunks}"]]
    if report.chunks_resumed:
        rows.append(["chunks from an earlier run", f"{report.chunks_resumed} (not in the "
                     "statistics)"])
    rows.append(["input scale/offset", scaling_text(record.get("scale_offset"))])
    drifted = ", ".join(report.drifted_bands) or "none"
    rows.append([f"drifted bands (drift > {report.drift_threshold:g})", drifted])
    return rows


def scaling_text(record: dict[str, Any] | None) -> str:
    """Whether the input's own scale/offset was applied before normalisation, and which."""
    if not record:
        return "none declared (values as stored)"
    pairs = sorted(set(zip(record["scales"], record["offsets"], strict=True)))
    values = "; ".join(f"× {s:g} + {o:g}" for s, o in pairs)
    if record.get("applied"):
        return f"applied: {values} ({record.get('origin', '?')})"
    return f"not applied: {values} ({record.get('reason', '?')})"


def timing_rows(report: RunReport) -> list[list[str]]:
    t = report.timing
    return [
        ["wall time", f"{t.seconds:.2f} s"],
        ["model calls", f"{t.batches} on {t.devices} device(s)"],
        ["latency p50 / p99",
         f"{fmt(t.latency_p50_ms, '.1f')} / {fmt(t.latency_p99_ms, '.1f')} ms"],
        ["model busy", "–" if t.model_busy is None else f"{100 * t.model_busy:.0f} %"],
        ["throughput", f"{fmt(t.mpx_per_s, '.3f')} Mpx/s"],
        ["tiles run / skipped", f"{t.tiles_run} / {t.tiles_skipped}"],
    ]


def print_report(report: RunReport, record: dict[str, Any], console: Console) -> None:
    """Print the report as tables: summary, input bands, classes, entropy, timing."""
    console.print(_pairs("run", summary_rows(report, record)))
    bands = Table(title="input bands (drift = max(|μ − μ_train| / σ_train, |ln(σ / σ_train)|))")
    for name in ("band", "pixels", "mean", "std", "train mean", "train std", "mean shift",
                 "std ratio", "drift"):
        bands.add_column(name, justify="left" if name == "band" else "right")
    for b in report.bands:
        style = "bold red" if b.drifted else None
        bands.add_row(b.name, f"{b.pixels:,}", fmt(b.mean), fmt(b.std), fmt(b.train_mean),
                      fmt(b.train_std), fmt(b.mean_shift, ".2f"), fmt(b.std_ratio, ".2f"),
                      fmt(b.drift, ".2f"), style=style)
    console.print(bands)
    out = report.output
    classes = Table(title=f"output ({out.activation})")
    for name in ("class", "pixels", "fraction"):
        classes.add_column(name, justify="left" if name == "class" else "right")
    for c in out.classes:
        classes.add_row(c.name, f"{c.pixels:,}", pct(c.fraction))
    console.print(classes)
    console.print(_pairs("confidence", [
        ["mean normalised entropy", fmt(out.entropy_mean, ".3f")],
        [f"low confidence ({out.low_confidence_rule})", pct(out.low_confidence)],
    ]))
    console.print(_pairs("timing", timing_rows(report)))


def _pairs(title: str, rows: list[list[str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table


def fmt(value: float | None, spec: str = ".4g") -> str:
    """``value`` formatted, a dash when undefined."""
    return "–" if value is None else format(value, spec)


def pct(value: float | None) -> str:
    """A fraction as a percentage, a dash when undefined."""
    return "–" if value is None else f"{100 * value:.2f} %"
