"""Where a build's per-track work runs: in this process, in a local process pool, or on a Dask cluster.

Every executor here is a :class:`concurrent.futures.Executor`, so the build drives them all the same way: it
submits small picklable jobs (:class:`~genreslice.pipeline.audio_jobs.TrackJob`) and receives small records
back. What differs is how a dead worker shows up: a process pool breaks as a whole
(``concurrent.futures.BrokenExecutor``) and the build restarts it, while Dask reschedules the dead worker's tasks
itself and fails a task only when it has killed ``MAX_WORKER_DEATHS`` workers; :class:`DaskExecutor` reports that
as :class:`~genreslice.pipeline.errors.WorkerDiedError`.

Dask is optional (``pip install 'genreslice[dask]'``) and imported only when a Dask executor is asked for.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from genreslice.pipeline.errors import ExecutorError, SoxUnavailableError, WorkerDiedError
from genreslice.pipeline.sox import SoxInfo, find_sox

logger = logging.getLogger(__name__)

ExecutorFactory = Callable[[int], cf.Executor]

#: A track whose worker process dies this many times is recorded as failed instead of retried.
MAX_WORKER_DEATHS = 2
#: Dask re-runs a task that raised (a network file system's passing error) this many times before giving up.
DASK_RETRIES = 2
#: Seconds to wait for a Dask scheduler to answer, and for an external cluster to have a worker.
DASK_CONNECT_TIMEOUT_S = 30
DASK_INSTALL_HINT = "pip install 'genreslice[dask]' (the dask and distributed packages)"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


T = TypeVar("T")


class TaskWindow(Generic[T]):
    """A bounded window of tasks in flight: refilled from a queue of items, taken as they finish.

    The one "keep N tasks in flight" loop of genreslice (the build's audio work, reading labels, predict's SoX
    decoding): memory stays flat whatever the number of items, and the workers never wait for the consumer.

    Parameters
    ----------
    limit : int
        The most tasks submitted and not yet taken.
    ordered : bool
        True: :meth:`finished` gives tasks in submission order, waiting for the oldest (results stay in input
        order). False: it gives every task finished so far, waiting for the first to finish.

    Examples
    --------
    >>> window = TaskWindow(limit=8)
    >>> while True:
    ...     window.fill(queue, lambda item: executor.submit(work, item))
    ...     if not window:
    ...         break
    ...     for item, future in window.finished():
    ...         use(item, future.result())
    """

    def __init__(self, *, limit: int, ordered: bool = True) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit} must be at least 1")
        self.limit = limit
        self.ordered = ordered
        self._running: dict[cf.Future, T] = {}

    def __len__(self) -> int:
        return len(self._running)

    def fill(self, queue: deque[T], submit: Callable[[T], cf.Future]) -> None:
        """Submit items from the left of ``queue`` until ``limit`` are in flight or ``queue`` is empty.

        An item leaves ``queue`` only once ``submit`` returned its future: when ``submit`` raises (a broken
        pool), the item is still first in ``queue``.
        """
        while queue and len(self._running) < self.limit:
            self._running[submit(queue[0])] = queue[0]
            queue.popleft()

    def finished(self) -> Iterator[tuple[T, cf.Future]]:
        """Yield ``(item, future)`` of finished tasks, each removed from the window first; see ``ordered``."""
        if not self._running:
            return
        if self.ordered:
            future = next(iter(self._running))
            cf.wait([future])
            done = [future]
        else:
            done, _ = cf.wait(self._running, return_when=cf.FIRST_COMPLETED)
        for future in done:
            yield self._running.pop(future), future

    def items(self) -> list[T]:
        """The items in flight, oldest first."""
        return list(self._running.values())

    def cancel(self) -> None:
        """Cancel the tasks not started yet and forget every task in flight."""
        for future in self._running:
            future.cancel()
        self._running.clear()


def done_future(result) -> cf.Future:
    """A future that already holds ``result``: for an item whose answer is known without running a task."""
    future: cf.Future = cf.Future()
    future.set_result(result)
    return future


class InlineExecutor(cf.Executor):
    """Runs each task in the calling process as it is submitted: one worker needs no pool, no process
    start-up and no pickling. Outputs are identical to a pool's."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - delivered through the future, as a pool would
            future.set_exception(err)
        return future


def process_pool(workers: int) -> cf.Executor:
    """The default pool: worker processes fed from a shared queue, one task per track.

    Workers are forked while this process has a single thread: they start at once with the pipeline
    already imported. A process with other threads (a notebook, an application, a Dask client) could hand a held
    lock to the child, so then workers come from a fork server instead, which costs a fraction of a second more.
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["genreslice.pipeline.audio_jobs", "genreslice.pipeline.plan"])
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_prepare_worker)


def _prepare_worker() -> None:
    """Pool initializer: the worker leaves stopping to the build's process, and dies with it.

    * Ctrl-C, SIGTERM and SIGHUP reach every process of the terminal's group, workers included; the build's own
      process handles them (it kills its workers at once, see :func:`kill_workers`), so workers ignore them
      instead of each printing a KeyboardInterrupt traceback or dying half-way.
    * On Linux, the kernel kills the worker when the process that started it dies (``kill -9``, the OOM
      killer). Without it, such workers would wait forever and keep publishing tracks behind the back of the next
      run. Their SoX processes die with them in turn (:func:`genreslice.pipeline.sox.dies_with_parent`).
    """
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: workers end when they next find their pipe closed
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def kill_workers(executor: cf.Executor) -> None:
    """Stop a process pool's workers now (SIGKILL), whatever they are running; for an interrupted build.

    Waiting for them instead would wait for the SoX each one runs, minutes on a long file, and a second Ctrl-C
    during that wait leaves ``concurrent.futures`` hanging. Other executors are left alone.
    """
    if not isinstance(executor, cf.ProcessPoolExecutor):
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()


def default_executor(workers: int) -> cf.Executor:
    """In-process for one worker, a process pool for more."""
    return InlineExecutor() if workers == 1 else process_pool(workers)


class DaskExecutor(cf.Executor):
    """A :class:`concurrent.futures.Executor` on a Dask client: Dask's own ``Client.get_executor`` with per-task
    retries, whose futures report a task that killed its workers as :class:`WorkerDiedError`.

    Shutting it down cancels or awaits its own tasks only; the client and cluster stay up for the next executor.
    """

    def __init__(self, client, *, retries: int = DASK_RETRIES) -> None:
        from distributed import KilledWorker

        self._killed_worker = KilledWorker
        self._inner = client.get_executor(retries=retries, pure=False)
        self._futures: set[cf.Future] = set()
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        inner = self._inner.submit(fn, *args, **kwargs)
        outer: cf.Future = cf.Future()
        with self._lock:
            self._futures.add(outer)

        def relay(done: cf.Future) -> None:  # runs on the client's event-loop thread
            with self._lock:
                self._futures.discard(outer)
            try:
                if done.cancelled():
                    outer.set_exception(ExecutorError(
                        "the Dask cluster dropped a task (was the scheduler stopped or restarted?)"))
                elif isinstance(done.exception(), self._killed_worker):
                    deaths = done.exception().allowed_failures + 1
                    outer.set_exception(WorkerDiedError(
                        f"the worker process died {deaths} times on this track", deaths=deaths))
                elif done.exception() is not None:
                    outer.set_exception(done.exception())
                else:
                    outer.set_result(done.result())
            except cf.InvalidStateError:  # the outer future was cancelled meanwhile: nobody waits for it
                pass

        def cancel_inner(future: cf.Future) -> None:
            if future.cancelled():
                inner.cancel()

        outer.add_done_callback(cancel_inner)
        inner.add_done_callback(relay)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                pending = list(self._futures)
            for future in pending:
                future.cancel()
        self._inner.shutdown(wait=wait)


@dataclass
class DaskCluster:
    """A connected Dask client and, for a local cluster, the cluster it started.

    Attributes
    ----------
    client : distributed.Client
    address : str
        The scheduler's address.
    threads : int
        Worker threads in the cluster when it was connected: the build keeps about four tasks per thread queued.
    local : bool
        Whether this process started the cluster (and stops it on exit).
    """

    client: object
    address: str
    threads: int
    local: bool

    def executor(self, workers: int = 0) -> DaskExecutor:
        """An executor on this cluster; ``workers`` is accepted for :data:`ExecutorFactory` and ignored: the
        cluster's workers decide the parallelism."""
        return DaskExecutor(self.client)

    def check_sox(self, sox: SoxInfo) -> None:
        """Check that every worker runs ``sox.path`` with the version this process sees and MP3 support.

        Slices depend on the SoX version, so a data set must come from one; a worker without SoX would record
        every track it takes as failed.

        Raises
        ------
        SoxUnavailableError
            A worker lacks SoX, its MP3 support, or has another version; the message names the worker.
        """
        reports = self.client.run(_worker_sox_report, sox.path)
        problems = []
        for worker, report in sorted(reports.items()):
            if report.startswith("error: "):
                problems.append(f"{worker}: {report[len('error: '):]}")
            elif report != sox.version:
                problems.append(f"{worker}: SoX {report}, but this machine has SoX {sox.version}")
        if problems:
            raise SoxUnavailableError(
                f"the Dask workers must run the same SoX as this machine ({sox.path}, version {sox.version}, with "
                "MP3 support): " + "; ".join(problems))


def _worker_sox_report(sox_path: str) -> str:
    """Run on every Dask worker: the version of the SoX at ``sox_path``, or ``error: ...``."""
    try:
        return find_sox(executable=sox_path).version
    except SoxUnavailableError as err:
        return f"error: {err}"


def _ctrl_c_for_the_client_only():
    """A worker plugin for local clusters: the workers ignore SIGINT.

    They share the terminal's process group with this process, so Ctrl-C reaches them too; the client stops the
    build and closes the cluster, and without this every worker would also print a KeyboardInterrupt traceback.
    The plugin runs again on a restarted worker.
    """
    from distributed import WorkerPlugin

    class CtrlCForTheClientOnly(WorkerPlugin):
        def setup(self, worker) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return CtrlCForTheClientOnly()


@contextlib.contextmanager
def _quiet_when_interrupted() -> Iterator[None]:
    """When the block is interrupted (Ctrl-C, SIGTERM), silence the loggers of Dask's event loop before the client
    and cluster close: cancelling its tasks mid-way can make tornado log a callback's traceback (seen about once in
    ten interrupted builds), which would bury the one line that says to run the command again."""
    try:
        yield
    except KeyboardInterrupt:
        for name in ("tornado", "distributed", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        raise


@contextlib.contextmanager
def dask_cluster(*, workers: int | None = None, scheduler: str | None = None) -> Iterator[DaskCluster]:
    """Connect to a Dask cluster for the length of the block: a new local one, or the one at ``scheduler``.

    Parameters
    ----------
    workers : int, optional
        Local cluster only: worker processes of one thread each (default: the number of cores).
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:8786``); its workers must see the audio and output
        folders at the same paths as this machine.

    Raises
    ------
    ExecutorError
        Dask is not installed, the scheduler cannot be reached, or it has no workers.
    """
    if workers is not None and scheduler is not None:
        raise ExecutorError("workers= applies to a local cluster only; the workers of a scheduler are its own")
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ExecutorError(f"the Dask executor needs Dask ({err}); install it with {DASK_INSTALL_HINT}") from err
    if scheduler is None:
        local_settings = {
            # Charge a worker's death to the track it was running, not to tracks merely queued behind it.
            "distributed.scheduler.worker-saturation": 1.0,
            "distributed.scheduler.allowed-failures": MAX_WORKER_DEATHS - 1,
            # Periodic work a build does not need: with two cores the scheduler, the client and each worker's
            # event loop compete with SoX for the same CPUs (see the README's Dask benchmark).
            "distributed.worker.profile.enabled": False,
            "distributed.scheduler.work-stealing": False,
            "distributed.admin.tick.interval": "1s",
            "distributed.admin.system-monitor.interval": "2s",
            "distributed.worker.memory.monitor-interval": "500ms",
        }
        with dask.config.set(local_settings), LocalCluster(
            n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR,
        ) as cluster, Client(cluster) as client, _quiet_when_interrupted():
            client.register_plugin(_ctrl_c_for_the_client_only(), name="genreslice-ctrl-c")
            yield DaskCluster(client, cluster.scheduler_address, sum(client.nthreads().values()), local=True)
        return
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as err:
        raise ExecutorError(f"cannot reach the Dask scheduler at {scheduler!r}: {err}") from err
    with client:
        try:
            client.wait_for_workers(1, timeout=DASK_CONNECT_TIMEOUT_S)
        except TimeoutError as err:
            raise ExecutorError(
                f"the Dask scheduler at {scheduler} has no workers after {DASK_CONNECT_TIMEOUT_S} s; start some "
                f"with: dask worker {scheduler} --nthreads 1 --nworkers N") from err
        yield DaskCluster(client, scheduler, sum(client.nthreads().values()), local=False)
