r"""Independent tasks on one process or on a ``dask.distributed`` cluster.

The verifier's (model, replicate) fits, the calibration study's verdicts and
the main job's checks are independent tasks, each seeded by its own
identifiers, so their results do not depend on where or in which order they
run: a serial run and a run on any number of workers give the same numbers.

* ``workers=1`` and no ``scheduler``: a plain loop in this process.
* ``workers=K > 1``: an embedded :class:`dask.distributed.LocalCluster` of ``K``
  single-threaded worker processes, closed afterwards.
* ``scheduler="tcp://HOST:PORT"``: an existing cluster (started with
  ``dask scheduler`` and ``dask worker``).

Dask is an optional extra (``pip install ".[dask]"``); it is imported only
when asked for, and its absence is reported with that command.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

from numerics._validation import as_count, fail

from .verify_args import as_seconds

__all__ = ["DASK_HINT", "DEFAULT_CONNECT_TIMEOUT", "ClusterError", "Executor", "executor"]

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


@contextmanager
def executor(workers: int = 1, scheduler: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
    """Context manager yielding an :class:`Executor` (module docstring).

    Raises
    ------
    numerics.InvalidInputError
        ``workers`` not an integer >= 1, ``scheduler`` not a string, or
        ``connect_timeout`` not a number of seconds > 0.
    ImportError
        Dask is needed (``workers > 1`` or a ``scheduler``) but not installed;
        the message says how to install it.
    ClusterError
        The scheduler did not answer within ``connect_timeout`` seconds, or the
        local cluster could not start.
    """
    workers = as_count(workers, "workers", 1)
    if scheduler is not None and not isinstance(scheduler, str):
        raise fail("scheduler", scheduler, "an address such as 'tcp://127.0.0.1:8786', or None")
    connect_timeout = as_seconds(connect_timeout, "connect_timeout")
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
