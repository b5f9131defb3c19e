"""The feeder's lanes on their own: batches are cut across chunks, oldest first, short only
when the model would wait; staged chunks are bounded; a blended canvas is ``Σ w · z``."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest
import torch

from tilerun.engine.blender import Blender
from tilerun.engine.compute import ChunkWork
from tilerun.engine.lanes import Batch, Chunk
from tilerun.engine.staging import MAX_STAGED, Staging
from tilerun.errors import NonFiniteError
from tilerun.geometry import Window
from tilerun.models.normalise import Normalizer

EDGE = 4


def _chunk(index: int, tiles: int) -> Chunk:
    pixels = np.full((1, EDGE, EDGE * tiles), index, np.uint8)
    offsets = np.array([(0, EDGE * k) for k in range(tiles)])
    work = ChunkWork((0, index), Window(0, 0, EDGE, EDGE * tiles), pixels, None, offsets)
    return Chunk(work, Future())


def _staging(batch: int) -> Staging:
    identity = Normalizer(np.zeros(1, np.float32), np.ones(1, np.float32))
    return Staging(identity, batch, EDGE, torch.device("cpu"))


def test_batches_take_tiles_across_chunks_oldest_first() -> None:
    staging = _staging(batch=4)
    staging.inbox.extend([_chunk(1, 3), _chunk(2, 3), _chunk(3, 1)])
    for chunk in staging.admit():
        staging.upload(chunk)
    assert staging.pending_tiles() == 7
    parts = staging.take(model_waits=False)
    assert parts is not None
    assert [(c.work.index[1], a, b) for c, a, b in parts] == [(1, 0, 3), (2, 0, 1)]
    batch = staging.stack(parts)
    assert batch.x.shape == (4, 1, EDGE, EDGE)
    assert batch.x[:, 0, 0, 0].tolist() == [1, 1, 1, 2]
    assert staging.staged[0].work.index == (0, 2)  # the first chunk is all cut: released
    # 3 tiles left, fewer than a batch: cut only when the model would otherwise wait
    assert staging.take(model_waits=False) is None
    parts = staging.take(model_waits=True)
    assert parts is not None and sum(b - a for _, a, b in parts) == 3


def test_staged_chunks_are_bounded() -> None:
    staging = _staging(batch=2)
    staging.inbox.extend(_chunk(k, 1) for k in range(MAX_STAGED + 2))
    assert len(staging.admit()) == MAX_STAGED and len(staging.inbox) == 2
    assert staging.has_work(model_waits=False)  # a full batch is waiting
    staging.clear()
    assert not staging.holds_chunks() and not staging.has_work(model_waits=True)


def test_blender_sums_weighted_tiles_and_resolves_the_chunk() -> None:
    chunk = _chunk(1, 2)
    weights = torch.tensor([[0.5] * EDGE] * EDGE)
    logits = torch.arange(2 * 2 * EDGE * EDGE, dtype=torch.float32).reshape(2, 2, EDGE, EDGE)
    batch = Batch(torch.empty(0), [(chunk, 0, 2)], logits=logits, finite=torch.ones(2, dtype=bool))
    Blender(weights, border=0).blend(batch)
    canvas = chunk.future.result(timeout=1)
    assert canvas.shape == (2, EDGE, 2 * EDGE)
    np.testing.assert_array_equal(canvas[:, :, :EDGE], 0.5 * logits[0].numpy())
    np.testing.assert_array_equal(canvas[:, :, EDGE:], 0.5 * logits[1].numpy())


def test_blender_fails_a_chunk_with_non_finite_logits() -> None:
    chunk = _chunk(1, 1)
    logits = torch.full((1, 2, EDGE, EDGE), float("nan"))
    batch = Batch(torch.empty(0), [(chunk, 0, 1)], logits=logits,
                  finite=torch.zeros(1, dtype=bool))
    Blender(torch.ones(EDGE, EDGE), border=0).blend(batch)
    with pytest.raises(NonFiniteError, match="non-finite"):
        chunk.future.result(timeout=1)
