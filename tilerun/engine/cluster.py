"""Running the chunk graph on dask.distributed: a local cluster, a scheduler address, a Client.

Thin glue: the graph is the same as for threads. The :class:`~tilerun.engine.graph.Job` is one
graph key, so each worker receives the model once and keeps it for all its chunk tasks; each
worker moves it to its own device when it unpickles it (one GPU per worker with
``CUDA_VISIBLE_DEVICES``, as dask-cuda's ``LocalCUDACluster`` sets). Workers write their Zarr
chunks directly, each chunk once, with no locks.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tilerun.engine.options import DEFAULT_WORKERS, PredictOptions

log = logging.getLogger("tilerun")


@contextlib.contextmanager
def client_for(options: PredictOptions, client: Any = None) -> Iterator[Any]:
    """The given client, one connected to ``options.scheduler``, or a temporary local cluster."""
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if "://" in options.scheduler:
        with Client(options.scheduler) as connected:
            yield connected
        return
    workers = options.workers or DEFAULT_WORKERS
    threads = options.threads or 1
    # silence_logs: the workers' own log lines are noise to a user of tilerun — warnings when
    # Ctrl-C cancels tasks, and errors too: a worker fetching a result from a peer that has
    # just shut down logs a traceback at ERROR. Task failures reach the client, which raises
    # them (a dead worker as KilledWorker), and tilerun reports those itself.
    blocked = _block_ctrl_c()
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    except BaseException:
        _unblock(blocked)
        raise
    with cluster:
        _unblock(blocked)  # a Ctrl-C pressed during start-up arrives here, with a cluster to close
        with Client(cluster) as local:
            yield local


def _block_ctrl_c() -> bool:
    """Block SIGINT while worker processes start, so that they inherit it blocked.

    Ctrl-C reaches the whole process group: workers dying on their own print tracebacks and
    race this process's orderly shutdown of the cluster. A blocked signal is not lost: this
    process receives it when :func:`_unblock` runs. Returns whether anything was blocked
    (only the main thread handles SIGINT in Python).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return True


def _unblock(blocked: bool) -> None:
    if blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_on_cluster(
    client: Any, graph: dict[Any, Any], keys: list[Any], on_result: Callable[[Any], None]
) -> list[Any]:
    """Submit the graph, report each write as it finishes, return the results in key order."""
    from distributed import as_completed

    link = getattr(client, "dashboard_link", None)
    if link:
        log.info("Dask dashboard: %s", link)
    graph = _broadcast_job(client, graph)
    futures = client.get(graph, keys, sync=False)
    for future in as_completed(futures):
        on_result(future.result())
    return [f.result() for f in futures]


def _broadcast_job(client: Any, graph: dict[Any, Any]) -> dict[Any, Any]:
    """Send the job (model included) to every worker up front, once.

    Left in the graph, it would live on one worker, and the scheduler, to avoid moving it,
    would put every chunk task on that worker.
    """
    job_keys = [k for k in graph if isinstance(k, str) and k.startswith("tilerun-job-")]
    graph = dict(graph)
    for key in job_keys:
        graph[key] = client.scatter(graph[key], broadcast=True, hash=False)
    return graph
