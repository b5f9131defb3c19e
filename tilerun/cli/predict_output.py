"""What ``tilerun predict`` prints: the one-line summary of a run (or its JSON), and the plan
of a ``--dry-run``. Plain text that is never wrapped, whatever the terminal's width."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tilerun.cli.jsonout import json_line
from tilerun.errors import printable

if TYPE_CHECKING:
    from tilerun.engine.dry_run import RunPlan
    from tilerun.engine.execute import RunSummary


def summary_line(s: RunSummary, start_up: float = 0.0) -> str:
    """The one-line summary of a run (plain text: it is never wrapped, whatever the width)."""
    if s.already_complete:
        return f"done {printable(s.output)} is already complete ({s.chunks} chunks); nothing to do"
    skipped = (f", {s.tiles_skipped} skipped without tissue ({s.skipped_fraction:.0%})"
               if s.tiles_skipped else "")
    return (
        f"done {s.tiles_run} tiles ({s.recompute_ratio:.2f}× the minimum{skipped}) in "
        f"{s.chunks} chunks on {s.device} ({s.backend}), {_seconds(s, start_up)}, "
        f"{s.pixels_per_second / 1e6:.2f} Mpx/s → {printable(s.output)}"
    )


def _seconds(s: RunSummary, start_up: float) -> str:
    """``2.3 s (start-up 0.9, opening 0.1, …, work 0.4, finishing 0.1)``: the wall time since
    the command started and where it went (``start-up``: imports and the command's own checks
    before the run), adding up to it (0.1 s rounding aside)."""
    from tilerun.phases import breakdown_text

    if not s.phases:
        return f"{s.seconds:.1f} s"
    phases = {"start-up": start_up, **s.phases} if start_up > 0 else s.phases
    total = start_up + s.wall_seconds
    return f"{total:.1f} s ({breakdown_text(phases, s.phase_notes)})"


def summary_dict(s: RunSummary) -> dict[str, Any]:
    """The summary's fields and its derived figures."""
    data = asdict(s)
    data.update(recompute_ratio=s.recompute_ratio, pixels_per_second=s.pixels_per_second,
                skipped_fraction=s.skipped_fraction if s.tiles_minimum + s.tiles_skipped else 0.0)
    return data


def echo_summary(s: RunSummary, as_json: bool, start_up: float = 0.0) -> None:
    if as_json:
        click.echo(json_line({**summary_dict(s), "start_up_seconds": start_up}))
        return
    line = summary_line(s, start_up)
    click.echo(click.style("done", fg="green") + line.removeprefix("done"))


def echo_already_complete(out: str | Path, as_json: bool) -> None:
    if as_json:
        click.echo(json_line({"output": str(out), "already_complete": True}))
    else:
        click.echo(f"plan: {out} is already complete; --resume does nothing if it is the same "
                   "job (the run checks; another job's is refused)")


def _written(plan: RunPlan) -> str:
    if plan.chunks_written is None:
        return ""
    return (f"; {plan.chunks_written} already written in the unfinished store (--resume keeps "
            "them if the same run wrote them, which the run checks)")


def _names(plan: RunPlan) -> str:
    names = plan.band_names
    return f" ({', '.join(n or '?' for n in names)})" if names else ""


def _scaling(plan: RunPlan) -> str:
    from tilerun.report.text import scaling_text

    return f"; scale/offset {scaling_text(plan.scale_offset)}" if plan.scale_offset else ""


def plan_lines(plan: RunPlan) -> list[str]:
    """The ``--dry-run`` plan, one fact a line (plain text, never wrapped)."""
    from tilerun.engine.budget import size_text as _size

    bands, height, width = plan.shape
    skipped = (f", {plan.tiles_skipped} skipped without tissue" if plan.tiles_skipped
               else ", none skipped")
    memory = plan.memory
    available = (f"; {_size(plan.memory_available)} available"
                 if plan.memory_available is not None else "")
    variables = ", ".join(f"{v.name} {v.dtype} {'×'.join(map(str, v.shape))} {_size(v.nbytes)}"
                          for v in plan.variables)
    pyramids = f"; pyramids: {', '.join(plan.pyramids)}" if plan.pyramids else ""
    if plan.backend == "auto" and not plan.backend_reference:
        backend = (f"auto: {plan.backend_candidates[0]}, the ONNX model's own runtime (nothing "
                   "to convert or check)")
    elif plan.backend == "auto" and plan.backend_cached:
        backend = (f"auto, from {', '.join(plan.backend_candidates)}: an earlier run here "
                   f"chose {plan.backend_cached}, which runs if it still matches "
                   f"{plan.backend_reference}")
    elif plan.backend == "auto":
        backend = (f"auto, from {', '.join(plan.backend_candidates)} (each checked against "
                   f"{plan.backend_reference} and the fastest chosen when the run starts; the "
                   "choice is cached)")
    else:
        backend = plan.backend
    model = f"{plan.model_name} ({plan.model})" if plan.model_name else plan.model
    exists = ([f"  exists   {plan.output} {plan.output_exists} (a run would stop here)"]
              if plan.output_exists else [])
    return [
        f"plan for {plan.input} → {plan.output} (dry run: nothing written)",
        *exists,
        f"  input    {bands} band(s){_names(plan)}, {height} × {width} px{_scaling(plan)}",
        f"  model    {model}, {plan.classes} classes",
        f"  tiles    {plan.tiles_run} to run of {plan.tiles}{skipped} "
        f"({plan.tile} px, overlap {plan.overlap} px)"
        + (f"; {plan.overlap_note}" if plan.overlap_note else ""),
        f"  chunks   {plan.chunks} of {plan.chunk} px{_written(plan)}",
        f"  memory   at least {_size(memory.host + memory.device)} ({memory.chunks} chunk(s) "
        f"in flight {_size(memory.host)}, model batches and staged chunks "
        f"{_size(memory.device)}){available}",
        f"  output   {_size(plan.output_bytes)} before compression: {variables}{pyramids}",
        f"  device   {plan.device}",
        f"  backend  {backend}",
    ]


def echo_plan(plan: RunPlan, as_json: bool) -> None:
    if as_json:
        click.echo(json_line(plan.to_dict()))
        return
    for line in plan_lines(plan):
        click.echo(line)

