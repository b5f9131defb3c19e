"""The Dask graph of a run: one ``tiles`` task and one ``write`` task per output chunk.

Shared objects (source, plan, runner, sink) are graph keys of their own, so a distributed
scheduler ships each to a worker once rather than with every task.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Any

from tilerun.classes.labels import labels_from_logits
from tilerun.engine.compute import ComputeStage
from tilerun.engine.partial import (
    ChunkResult,
    Partial,
    assemble,
    carry_from,
    partial_from_carry,
    probabilities_from_logits,
    region_den,
    run_tiles,
    tile_offsets,
)
from tilerun.engine.plan import ChunkPlan
from tilerun.engine.runner import TileRunner
from tilerun.models.scaling import applied_scaling
from tilerun.report import collect
from tilerun.report.collect import StatsPlan
from tilerun.sinks import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE, Sink
from tilerun.sources import Source

WRITE = "tilerun-write"


@dataclass(frozen=True)
class Job:
    """Everything a chunk task needs, bundled so the graph carries one reference.

    ``logits``, ``labels``: whether the sink stores them; ``probabilities``: the activation
    that makes them (``softmax`` or ``sigmoid``) when the sink stores them, else None.
    ``stats``: what the chunk tasks measure for the run report (None: nothing).
    """

    source: Source
    plan: ChunkPlan
    runner: TileRunner
    compute: ComputeStage
    classes: int
    sink: Sink
    labels: bool
    logits: bool = True
    probabilities: str | None = None
    stats: StatsPlan | None = None


def with_stats(job: Job) -> Job:
    """The job, measuring the run report's statistics (:mod:`tilerun.report.collect`)."""
    if not collect.ENABLED:
        return job
    spec, (bands, _, _) = job.runner.model.spec, job.source.shape
    plan = StatsPlan.for_model(job.source.name, spec, bands, job.source.dtype, job.classes,
                               applied_scaling(job.source, spec))
    return replace(job, stats=plan)


def _tiles(job: Job, index: tuple[int, int]) -> tuple[Partial, ...]:
    return run_tiles(job.source, job.plan, index, job.compute, job.stats)


def _carried(
    job: Job, index: tuple[int, int], needed: list[tuple[int, int]]
) -> tuple[Partial | None, ...]:
    """A finished chunk's pieces for the unfinished chunks, as kept by the sink when it was
    written (:func:`carry_from`); if any is missing, its tiles run again instead."""
    region = job.plan.partial_window(*index)
    den = region_den(job.plan, index, *tile_offsets(job.plan, index))
    kept = {}
    for target in needed:
        carry = job.sink.carry(index, target)
        if carry is None:
            return run_tiles(job.source, job.plan, index, job.compute)
        window = region.intersection(job.plan.chunk_window(*target))
        kept[target] = partial_from_carry(window, carry, den[window.slices(region)], job.classes)
    return tuple(kept.get(t) for t in job.plan.targets(*index))


def _write(
    job: Job,
    index: tuple[int, int],
    own: tuple[Partial | None, ...] | None,
    pieces: list[Partial],
    outgoing: list[Partial],
    later: list[tuple[int, int]],
) -> ChunkResult:
    """Assemble and write a chunk; first keep what it sends to the ``later`` chunks.

    ``own``: the chunk's own tiles result (one piece per target), None if it owns no tile.
    """
    tiles_stats = None
    if own is not None:
        mine = own[job.plan.targets(*index).index(index)]
        pieces = [mine, *pieces] if mine is not None else pieces
        tiles_stats = mine.stats if mine is not None else None
    for target, piece in zip(later, outgoing, strict=True):
        job.sink.keep_carry(index, target, carry_from(piece))
    window = job.plan.chunk_window(*index)
    logits, valid = assemble(window, pieces, job.classes)
    outputs = {"logits": logits} if job.logits else {}
    if job.labels:
        outputs["labels"] = labels_from_logits(logits, valid, LABEL_FILL)
    if job.probabilities is not None:
        outputs["probabilities"] = probabilities_from_logits(
            logits, valid, job.probabilities, PROBABILITY_SCALE, PROBABILITY_FILL
        )
    stats = None
    if job.stats is not None:
        stats = job.stats.observe_output(tiles_stats, (window.y, window.x), logits, valid,
                                         outputs.get("labels"))
    job.sink.write(window, outputs)
    return ChunkResult(
        index=index,
        tiles=len(job.plan.owned_tiles(*index)),
        pixels=window.size,
        valid_pixels=int(valid.sum()),
        stats=stats,
    )


def build_graph(
    job: Job, token: str, done: frozenset[tuple[int, int]] = frozenset()
) -> tuple[dict[Any, Any], list[tuple[Any, ...]]]:
    """The task graph and the keys of its write tasks (row-major), leaving out ``done`` chunks.

    A resumed run reads the partial sums that finished chunks send to unfinished ones from
    the sink (kept when they were written) instead of running their tiles again, and writes
    no finished chunk again.
    """
    plan = job.plan
    job_key = f"tilerun-job-{token}"
    graph: dict[Any, Any] = {job_key: job}
    for i, j in plan.chunks():
        targets = plan.targets(i, j)
        needed = [t for t in targets if t not in done]
        if not needed:
            continue
        graph[("tilerun-tiles", token, i, j)] = (
            (_carried, job_key, (i, j), needed) if (i, j) in done else (_tiles, job_key, (i, j))
        )
        for n, (a, b) in enumerate(targets):
            if (a, b) not in done and (a, b) != (i, j):  # its own piece: see the write
                graph[("tilerun-piece", token, i, j, a, b)] = (
                    operator.getitem, ("tilerun-tiles", token, i, j), n
                )
    writes = []
    for i, j in plan.chunks():
        if (i, j) in done:
            continue
        sources = plan.sources(i, j)
        pieces = [("tilerun-piece", token, a, b, i, j) for a, b in sources if (a, b) != (i, j)]
        # The chunk's own piece is taken from its tiles result inside the write: one task
        # fewer per chunk (a scheduler round trip each on a cluster).
        own = ("tilerun-tiles", token, i, j) if (i, j) in sources else None
        # Also depend on the pieces this chunk's tiles send *forward*: that makes the scheduler
        # split the tiles result right after computing it, so the big tuple is freed at once
        # and only thin spill strips wait for later chunks (memory flat in image size).
        later = [(a, b) for a, b in plan.targets(i, j) if (a, b) not in done and (a, b) != (i, j)]
        outgoing = [("tilerun-piece", token, i, j, a, b) for a, b in later]
        key = (WRITE, token, i, j)
        graph[key] = (_write, job_key, (i, j), own, pieces, outgoing, later)
        writes.append(key)
    return graph, writes
