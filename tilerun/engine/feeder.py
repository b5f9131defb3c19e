"""One feeder per device: full batches across chunks, a busy device, blending on the device.

Three threads joined by short queues, so that each stage overlaps the others::

    submit(chunk) ──► stage ──► model ──► blend ──► future.set_result(canvas)

* **stage** uploads a chunk's pixels (from pinned memory, on a side CUDA stream, while the
  previous batch runs), normalises them on the device and cuts batches of exactly
  ``batch_size`` tiles, taking tiles from the next chunk when one runs out. It cuts a short
  batch only when the model would otherwise wait (the model thread is idle and nothing more
  has been queued): then the device is idle anyway and waiting longer would only add latency.
* **model** runs the batches (autocast, TTA), one after another, keeping at most two on a GPU.
* **blend** adds each tile's logits times the weight window into its chunk's float32 canvas
  on the device; when a chunk's last tile is in, only the canvas goes back to the host.

This module holds the threads, their queues and their lifecycle; what the stage lane does to
chunks is :class:`~tilerun.engine.staging.Staging`, what the blend lane does is
:class:`~tilerun.engine.blender.Blender`.

Back-pressure: at most :data:`~tilerun.engine.staging.MAX_STAGED` chunks sit on the device at
once; ``submit`` itself never blocks, callers block on the future. Threads are daemons and
exit after :data:`IDLE_EXIT_S` seconds without work (a cluster worker keeps the job between
runs), and start again on the next ``submit``. A failure fails every chunk in flight and the
next submits.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch

from tilerun.engine.blender import Blender
from tilerun.engine.call_timer import CallTimer
from tilerun.engine.compute import ChunkWork, ComputeStage
from tilerun.engine.lanes import Batch, Chunk, Lanes, finite_tiles, on_stream
from tilerun.engine.runner import TileRunner
from tilerun.engine.staging import Staging
from tilerun.models.normalise import Normalizer

#: Batches queued between stages: one waits while the model runs the previous one (its
#: upload overlapping that batch); more would only hold more chunks in flight.
QUEUE_DEPTH = 1
IDLE_EXIT_S = 30.0


class DeviceFeeder(ComputeStage):
    """The compute stage for one device (CPU or one CUDA device) in one process."""

    def __init__(self, runner: TileRunner, normalize: Normalizer, weights: np.ndarray,
                 batch_size: int) -> None:
        self.runner = runner
        self.normalize = normalize
        self.weights = np.ascontiguousarray(weights, np.float32)
        self.batch_size = batch_size
        self._init_state()

    def _init_state(self) -> None:
        self.tiles_run = 0
        #: forward calls by batch size (how often a short batch was cut)
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self._cv = threading.Condition()
        edge = int(self.weights.shape[0]) + 2 * self.runner.model.spec.border
        self._staging = Staging(self.normalize, self.batch_size, edge, self.runner.device)
        self._unresolved: set[Future[np.ndarray]] = set()
        self._lanes: Lanes | None = None
        self._error: BaseException | None = None
        self._blender: Blender | None = None  # made once the threads start on the device
        self._compute_stream: Any = None
        self._timer: CallTimer | None = None  # made with the streams, once the device is known

    # -- the seam ----------------------------------------------------------------------------

    def submit(self, work: ChunkWork) -> Future[np.ndarray]:
        """Queue a chunk with at least one tile (never blocks; the future does)."""
        if work.tiles == 0:
            raise ValueError("a chunk without tiles has nothing to compute")
        future: Future[np.ndarray] = Future()
        with self._cv:
            if self._error is not None:
                future.set_exception(self._error)
                return future
            self._staging.inbox.append(Chunk(work, future))
            self._unresolved.add(future)
            future.add_done_callback(self._unresolved.discard)
            if self._lanes is None:
                self._lanes = self._start()
            self._cv.notify_all()
        return future

    def close(self) -> None:
        """Stop the threads; a chunk still in flight (the run was interrupted) fails, so that
        no caller waits for it forever."""
        with self._cv:
            lanes, self._lanes = self._lanes, None
            if lanes is not None:
                lanes.stopping = True
                self._cv.notify_all()
        for thread in lanes.threads if lanes is not None else ():
            thread.join()
        with self._cv:
            self._staging.clear()
            for future in list(self._unresolved):
                if not future.done():
                    future.set_exception(RuntimeError("the run stopped before this chunk ran"))

    def drain_timings(self) -> list[float]:
        """Durations of the model calls since the last drain (see :class:`CallTimer`)."""
        return self._timer.drain() if self._timer is not None else []

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("runner", "normalize", "weights", "batch_size")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    # -- threads -----------------------------------------------------------------------------

    def _start(self) -> Lanes:
        """Start a generation of the three threads (called with the lock held)."""
        device = self.runner.device
        if self._blender is None:
            weights = torch.from_numpy(self.weights).to(device)
            self._blender = Blender(weights, self.runner.model.spec.border)
            if device.type == "cuda":
                self._staging.copy_stream = torch.cuda.Stream(device)
                self._compute_stream = torch.cuda.Stream(device)
        lanes = Lanes()
        for loop in (self._stage_loop, self._model_loop, self._blend_loop):
            name = f"tilerun-{loop.__name__.strip('_').removesuffix('_loop')}"
            thread = threading.Thread(target=self._guarded, args=(loop, lanes), daemon=True,
                                      name=name)
            lanes.threads.append(thread)
            thread.start()
        return lanes

    def _guarded(self, loop: Any, lanes: Lanes) -> None:
        """Run a stage loop; on failure fail every chunk in flight and refuse new ones."""
        try:
            loop(lanes)
        except BaseException as err:  # handed to the callers, never swallowed
            self._fail(err, lanes)

    def _fail(self, err: BaseException, lanes: Lanes) -> None:
        with self._cv:
            if self._error is None:
                self._error = err
            # Every chunk not yet resolved, wherever it is: queued, staged, in a batch the
            # failing thread holds, or half blended.
            for future in list(self._unresolved):
                if not future.done():
                    future.set_exception(err)
            self._staging.clear()
            lanes.stopping = True
            lanes.to_model.clear()
            lanes.to_model.append(None)
            lanes.to_blend.clear()
            lanes.to_blend.append(None)
            self._cv.notify_all()

    # -- stage: upload, normalise, cut batches (see Staging) ------------------------------------

    def _stage_loop(self, lanes: Lanes) -> None:
        staging = self._staging
        while True:
            with self._cv:
                if not self._cv.wait_for(lambda: self._stage_has_work(lanes), IDLE_EXIT_S):
                    if staging.holds_chunks():
                        continue
                    lanes.stopping = True  # idle: this generation ends
                    if self._lanes is lanes:
                        self._lanes = None
                if lanes.stopping or self._error is not None:
                    lanes.to_model.append(None)
                    self._cv.notify_all()
                    return
                new = staging.admit()
            for chunk in new:
                staging.upload(chunk)
            with self._cv:
                parts = staging.take(self._model_waits(lanes))
            if parts is not None:
                batch = staging.stack(parts)
                with self._cv:
                    self._cv.wait_for(lambda: len(lanes.to_model) < QUEUE_DEPTH
                                      or lanes.stopping)
                    lanes.to_model.append(batch)
                    self._cv.notify_all()

    def _model_waits(self, lanes: Lanes) -> bool:
        return not lanes.model_busy and not lanes.to_model

    def _stage_has_work(self, lanes: Lanes) -> bool:
        if lanes.stopping or self._error is not None:
            return True
        return self._staging.has_work(self._model_waits(lanes))

    # -- model ---------------------------------------------------------------------------------

    def _model_loop(self, lanes: Lanes) -> None:
        previous: Any = None
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(lanes.to_model))
                batch = lanes.to_model.popleft()
                lanes.model_busy = batch is not None
                self._cv.notify_all()
            if batch is None:
                self._hand_to_blend(None, lanes)
                return
            done = self._forward(batch)
            if previous is not None:
                previous.synchronize()  # at most two batches queued on a GPU
            previous = done
            self._hand_to_blend(batch, lanes)
            with self._cv:
                lanes.model_busy = False
                self._cv.notify_all()

    def _forward(self, batch: Batch) -> Any:
        """Run the model on a batch; returns a CUDA event recorded after it (None on CPU)."""
        with on_stream(self._compute_stream):
            if batch.ready is not None:
                torch.cuda.current_stream().wait_event(batch.ready)
                batch.x.record_stream(torch.cuda.current_stream())
            tiles = sum(b - a for _, a, b in batch.parts)
            if self._timer is None:
                self._timer = CallTimer(cuda=self._compute_stream is not None)
            started = self._timer.start()
            batch.logits = self.runner.forward(batch.x)[:tiles]
            self._timer.stop(started)
            batch.finite = finite_tiles(batch.logits)
            done = torch.cuda.Event() if self._compute_stream is not None else None
            if done is not None:
                done.record()
        n = int(batch.logits.shape[0])
        self.tiles_run += n
        self.batch_sizes[n] += 1
        batch.x = torch.empty(0)  # let the inputs go (a [:0] view would keep their storage)
        return done

    def _hand_to_blend(self, batch: Batch | None, lanes: Lanes) -> None:
        with self._cv:
            self._cv.wait_for(lambda: len(lanes.to_blend) < QUEUE_DEPTH or self._error is not None)
            lanes.to_blend.append(batch)
            self._cv.notify_all()

    # -- blend (see Blender) -----------------------------------------------------------------

    def _blend_loop(self, lanes: Lanes) -> None:
        blender = self._blender
        if blender is None:
            raise RuntimeError("the feeder's threads run before its weights were set")
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(lanes.to_blend))
                batch = lanes.to_blend.popleft()
                self._cv.notify_all()
            if batch is None:
                return
            with on_stream(self._compute_stream):
                blender.blend(batch)
