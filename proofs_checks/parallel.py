r"""Independent tasks on one process or on a ``dask.distributed`` cluster.

The verifier's (model, replicate) fits, the calibration study's verdicts and
the main job's checks are independent tasks, each seeded by its own
identifiers, so their results do not depend on where or in which order they
run: a serial run and a run on any number of workers give the same numbers.

* ``workers=1`` and no ``scheduler``: a plain loop in this process.
* ``workers="auto"``: one process per available core, forked from this one for each
  map (:class:`ForkExecutor`, the standard library's ``multiprocessing``; no Dask, no
  pickling of the tasks, so a loss defined anywhere works).  A plain loop instead where
  forking is not safe or not possible: one core, a platform other than Linux, a
  daemonic process (a Dask worker), or a process that has loaded JAX (multithreaded,
  not fork-safe; a JAX loss has loaded it).
* ``workers=K > 1``: an embedded :class:`dask.distributed.LocalCluster` of ``K``
  single-threaded worker processes, closed afterwards.
* ``scheduler="tcp://HOST:PORT"``: an existing cluster (started with
  ``dask scheduler`` and ``dask worker``).

Dask is an optional extra (``pip install ".[dask]"``); it is imported only
when asked for, and its absence is reported with that command.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from numerics._validation import fail

from .verify_args import AUTO, as_seconds, as_workers

__all__ = ["AUTO", "DASK_HINT", "DEFAULT_CONNECT_TIMEOUT", "ClusterError", "Executor", "ForkExecutor",
           "as_workers", "executor", "local_cores"]


#: Seconds to wait for an existing scheduler before giving up (``connect_timeout``).
DEFAULT_CONNECT_TIMEOUT = 10.0

DASK_HINT = 'parallel runs need dask.distributed: pip install ".[dask]" (or pip install "dask[distributed]")'


class ClusterError(RuntimeError):
    """The Dask cluster could not be reached or started: an infrastructure failure, never a
    verdict (the command line exits 2)."""


def _import_distributed():
    try:
        import distributed  # noqa: F401
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError(DASK_HINT) from exc
    return Client, LocalCluster


class Executor:
    """Maps a function over tasks, serially or on a Dask client (see :func:`executor`)."""

    def __init__(self, client=None):
        self.client = client

    @property
    def workers(self) -> int:
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, func: Callable, tasks: Iterable) -> list:
        """``[func(t) for t in tasks]``, in task order whatever the execution order."""
        tasks = list(tasks)
        if self.client is None or len(tasks) <= 1:
            return [func(t) for t in tasks]
        futures = self.client.map(func, tasks, pure=False)
        return self.client.gather(futures)


def local_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU quota
    (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), which the affinity does not show."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cores, quota)) if quota else cores


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPU quota of this process's cgroup, rounded up to whole cores; None if unlimited."""
    try:
        limit, period = (root / "cpu.max").read_text().split()[:2]
        return None if limit == "max" else max(1, math.ceil(int(limit) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        limit = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return max(1, math.ceil(limit / period)) if limit > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _can_fork() -> bool:
    """Forking is possible and safe here: Linux, not a daemonic process, and no JAX loaded
    (its threads make a fork deadlock-prone, whatever the forked tasks use)."""
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon and "jax" not in sys.modules)


# The map a forked child runs, handed to it at its start (a forked process inherits its
# arguments: the tasks are never pickled).
_JOB: tuple | None = None


def _child_start(func, tasks):
    global _JOB
    _JOB = (func, tasks)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)  # the child shares the cores with its siblings


def _child_run(i: int):
    func, tasks = _JOB
    try:
        return True, func(tasks[i])
    except BaseException:  # noqa: BLE001 - the parent runs the task again and raises it itself
        return False, None


class ForkExecutor(Executor):
    """Maps a function over tasks on ``workers`` processes forked from this one.

    The children inherit the tasks (nothing is pickled on the way out); only results
    travel back, pickled.  A task that raises in a child is run again in the parent, so
    the caller sees the genuine exception.  Anything else that goes wrong with the
    processes (results that cannot be pickled, a child that dies, no process to fork)
    makes the whole map run in this process: the pool reports a dead child
    (:class:`concurrent.futures.process.BrokenProcessPool`) instead of waiting for it.
    Either way the results are the serial ones: each task is seeded by its own identifiers."""

    def __init__(self, workers: int):
        super().__init__()
        self._workers = int(workers)

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, func: Callable, tasks: Iterable) -> list:
        tasks = list(tasks)
        if len(tasks) <= 1 or self._workers <= 1:
            return [func(t) for t in tasks]
        try:
            with ProcessPoolExecutor(min(self._workers, len(tasks)), mp_context=multiprocessing.get_context("fork"),
                                     initializer=_child_start, initargs=(func, tasks)) as pool:
                out = list(pool.map(_child_run, range(len(tasks))))
        except Exception:  # noqa: BLE001 - the pool's failure, never a task's (_child_run catches those)
            return [func(t) for t in tasks]
        return [result if ok else func(task) for (ok, result), task in zip(out, tasks)]


@contextmanager
def executor(workers: int | str = 1, scheduler: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
    """Context manager yielding an :class:`Executor` (module docstring).

    Raises
    ------
    numerics.InvalidInputError
        ``workers`` not an integer >= 1 or ``"auto"``, ``scheduler`` not a string, or
        ``connect_timeout`` not a number of seconds > 0.
    ImportError
        Dask is needed (``workers > 1`` or a ``scheduler``) but not installed;
        the message says how to install it.
    ClusterError
        The scheduler did not answer within ``connect_timeout`` seconds, or the
        local cluster could not start.
    """
    workers = as_workers(workers)
    if scheduler is not None and not isinstance(scheduler, str):
        raise fail("scheduler", scheduler, "an address such as 'tcp://127.0.0.1:8786', or None")
    connect_timeout = as_seconds(connect_timeout, "connect_timeout")
    if scheduler is None and workers == AUTO:
        cores = local_cores()
        yield ForkExecutor(cores) if cores > 1 and _can_fork() else Executor()
        return
    if scheduler is None and workers == 1:
        yield Executor()
        return
    Client, LocalCluster = _import_distributed()
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"scheduler={scheduler!r}: no Dask scheduler answered within "
                               f"{connect_timeout:g} s ({type(exc).__name__}: {exc}); start one with "
                               "'dask scheduler', or check the address") from None
        try:
            yield Executor(client)
        finally:
            client.close()
        return
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")  # any free port: never clash with a running cluster
        client = Client(cluster, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"workers={workers}: the local Dask cluster did not start "
                           f"({type(exc).__name__}: {exc})") from None
    try:
        yield Executor(client)
    finally:
        client.close()
        cluster.close()
