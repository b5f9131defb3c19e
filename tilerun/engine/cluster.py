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
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tilerun.engine.options import DEFAULT_WORKERS, PredictOptions
from tilerun.errors import OptionError, first_line

log = logging.getLogger("tilerun")
#: Seconds to wait for a Dask scheduler to answer (distributed's default is 30 s).
CONNECT_TIMEOUT_S = 10
#: The port of a scheduler address given without one (distributed's default).
DEFAULT_SCHEDULER_PORT = 8786


@contextlib.contextmanager
def client_for(options: PredictOptions, client: Any = None) -> Iterator[Any]:
    """The given client, one connected to ``options.scheduler``, or a temporary local cluster."""
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if "://" in options.scheduler:
        with connect(options.scheduler) as connected:
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


def check_scheduler(address: str) -> None:
    """Refuse a scheduler address where no scheduler answers, before any work or output.

    distributed retries a refused connection for its whole timeout (30 s by default) and then
    raises with a long traceback; for ``tcp://`` a plain TCP connection says in a moment whether
    anything listens, and a client then connects (within :data:`CONNECT_TIMEOUT_S`) to check
    that it is a scheduler.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location, default_port=DEFAULT_SCHEDULER_PORT)
    except ValueError as err:
        raise OptionError("--scheduler", f"not a scheduler address: {address!r} ({err})") \
            from None
    if scheme == "tcp":
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                pass
        except OSError as err:
            raise _unreachable(address, err) from None
    with connect(address):  # something listens: is it a scheduler? (before any output exists)
        pass


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A client of the scheduler at ``address``, or one error line within
    :data:`CONNECT_TIMEOUT_S` seconds when it cannot be reached."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except Exception as err:
        # A peer that is no scheduler answers with bytes distributed misreads (a frame length
        # of exabytes: MemoryError), so any failure here means "no scheduler at that address".
        raise _unreachable(address, err) from None
    with client:
        yield client


def _unreachable(address: str, err: BaseException) -> OptionError:
    if isinstance(err, ConnectionRefusedError):
        why = "connection refused: nothing listens there"
    elif isinstance(err, (socket.timeout, TimeoutError)):
        why = f"no answer within {CONNECT_TIMEOUT_S} s"
    elif isinstance(err, socket.gaierror):
        why = "unknown host"
    elif isinstance(err, OSError):
        why = first_line(err)
    else:
        why = f"something answers there, but not a Dask scheduler: {type(err).__name__}"
    return OptionError("--scheduler", f"cannot reach the Dask scheduler at {address} ({why}); "
                       "start it, or check the address")


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
