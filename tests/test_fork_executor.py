"""The default local parallelism (``workers="auto"``): fits on processes forked from this
one give exactly the serial results, exceptions come back as themselves, and the places
where forking is unsafe run serially."""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from numerics import InvalidInputError
from proofs_checks import parallel
from proofs_checks.parallel import Executor, ForkExecutor, executor
fork_only = pytest.mark.skipif(not parallel._can_fork(), reason="forked processes need Linux's fork")


@fork_only
def test_closures_map_in_order_on_forked_processes():
    offset = np.arange(3.0)
    square = lambda x: (x * x + offset).tolist()  # noqa: E731 - a closure: it cannot be pickled
    assert ForkExecutor(2).map(square, range(7)) == [square(x) for x in range(7)]
    assert ForkExecutor(2).map(square, [5]) == [square(5)]
    assert ForkExecutor(2).map(square, []) == []
    where = ForkExecutor(2).map(lambda x: os.getpid(), range(6))
    assert os.getpid() not in where  # every result came from a child


@fork_only
def test_a_child_that_dies_makes_the_map_serial_instead_of_hanging():
    parent = os.getpid()

    def task(x):
        if x == 2 and os.getpid() != parent:
            os._exit(1)  # a segfault, the OOM killer: the child is gone without a word
        return x * 10

    assert ForkExecutor(2).map(task, range(5)) == [0, 10, 20, 30, 40]


@fork_only
def test_two_threads_mapping_at_once_get_their_own_results():
    out = {}

    def run(name, k):
        out[name] = ForkExecutor(2).map(lambda x: (name, x * k), range(8))

    threads = [threading.Thread(target=run, args=(n, k)) for n, k in (("a", 1), ("b", 100))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert out["a"] == [("a", x) for x in range(8)] and out["b"] == [("b", 100 * x) for x in range(8)]


def _raises_on_three(x):
    if x == 3:
        raise InvalidInputError("loss raised ValueError: three (loss 'x')")
    return x


@fork_only
def test_an_exception_in_a_child_is_raised_as_itself():
    with pytest.raises(InvalidInputError, match="three"):
        ForkExecutor(2).map(_raises_on_three, range(6))


@fork_only
def test_results_that_do_not_pickle_run_in_this_process():
    lock = threading.Lock()  # a lock cannot be pickled

    def task(x):
        return (x, lock)

    out = ForkExecutor(2).map(task, range(4))
    assert [x for x, _ in out] == [0, 1, 2, 3] and all(l is lock for _, l in out)


def test_auto_is_serial_where_forking_is_unsafe(monkeypatch):
    monkeypatch.setattr(parallel, "local_cores", lambda: 4)
    monkeypatch.setitem(sys.modules, "jax", object())  # a JAX loss has loaded it: serial
    with executor("auto") as ex:
        assert type(ex) is Executor
    monkeypatch.delitem(sys.modules, "jax")
    monkeypatch.setattr(parallel, "local_cores", lambda: 1)
    with executor("auto") as ex:
        assert type(ex) is Executor
    monkeypatch.setattr(parallel, "local_cores", lambda: 4)
    monkeypatch.setattr(parallel, "_can_fork", lambda: False)  # a daemonic process, or not Linux
    with executor("auto") as ex:
        assert type(ex) is Executor
    monkeypatch.setattr(parallel, "_can_fork", lambda: True)
    with executor("auto") as ex:
        assert isinstance(ex, ForkExecutor) and ex.workers == 4


def test_a_container_quota_caps_the_cores(monkeypatch, tmp_path):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setattr(parallel, "_cgroup_cpus", lambda: 3)
    assert parallel.local_cores() == 3
    monkeypatch.setattr(parallel, "_cgroup_cpus", lambda: None)
    assert parallel.local_cores() == 32


@pytest.mark.parametrize("files, cores", [
    ({"cpu.max": "250000 100000\n"}, 3), ({"cpu.max": "max 100000\n"}, None), ({"cpu.max": "50000 100000"}, 1),
    ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"}, 2),
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None), ({}, None)])
def test_cgroup_quotas_v1_and_v2(tmp_path, files, cores):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert parallel._cgroup_cpus(tmp_path) == cores


@pytest.mark.parametrize("bad", ["x", "Auto", "", 0, -1, 1.5, True])
def test_workers_must_be_a_count_or_auto(bad):
    with pytest.raises(InvalidInputError, match="workers"):
        with executor(bad):
            pass


# The verdicts run in a fresh interpreter: this one may have loaded JAX for other tests,
# and then "auto" is serial here (as it should be), which would compare serial with serial.
_SCRIPT = """
import json, sys
from proofs_checks import parallel
from proofs_checks.verify import verify_variant
from tests.test_verify import ONE_DIRECTIONAL, _kappa

import os
parent, children = os.getpid(), []
real = parallel.ForkExecutor.map
def counted(self, func, tasks):  # which process made each result
    out = real(self, lambda t: (os.getpid(), func(t)), tasks)
    children.extend(pid for pid, _ in out if pid != parent)
    return [r for _, r in out]
parallel.ForkExecutor.map = counted

KW = dict(claim="same-minimizers-as-clip", n_models=2, sizes=(32, 64), replicates=3, budget=0)
def doc(result):
    d = result.to_dict(); d.pop("seconds", None)
    return json.dumps(d, sort_keys=True)

def torch_clip(F):
    import torch
    t = torch.nn.functional.cross_entropy
    i = torch.arange(F.shape[0])
    return 0.5 * (t(F, i) + t(F.T, i))

losses = {"one-directional": (ONE_DIRECTIONAL, 2, "auto"), "kappa=0.3": (_kappa(0.3), 1, "auto"),
          "torch": (torch_clip, 3, "torch")}
name = sys.argv[1]
loss, seed, backend = losses[name]
auto = verify_variant(loss, seed=seed, backend=backend, workers="auto", **KW)
serial = verify_variant(loss, seed=seed, backend=backend, workers=1, **KW)
print(json.dumps({"same": doc(auto) == doc(serial), "from_children": len(children),
                  "replicates": int(auto.models[0].differences.shape[0])}))
"""


@fork_only
@pytest.mark.parametrize("name", ["one-directional", "kappa=0.3", "torch"])
def test_verdicts_on_forked_processes_are_the_serial_ones(name):
    if name == "torch":
        pytest.importorskip("torch", reason="torch is an optional extra (pip install '.[torch]')")
    if parallel.local_cores() < 2:
        pytest.skip("one core: 'auto' is serial")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, name], capture_output=True, text=True, cwd=root,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["from_children"] > 0  # the fits did run on forked processes
    assert out["replicates"] == 3
    assert out["same"]


def test_no_fork_in_a_process_that_has_loaded_jax(monkeypatch):
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    free = parallel._can_fork()
    monkeypatch.setitem(sys.modules, "jax", object())
    assert not parallel._can_fork()
    assert free == (sys.platform.startswith("linux"))  # and in no daemonic process: this one
