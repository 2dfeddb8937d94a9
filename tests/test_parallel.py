"""Dask paths: the verifier's fits and the main job's checks on worker processes give
exactly the serial results; without Dask the error says how to install it."""
import builtins
import json

import pytest

from proofs_checks import parallel
from proofs_checks.verify import verify_variant

from .test_verify import ONE_DIRECTIONAL, _kappa

distributed = pytest.importorskip(
    "distributed", reason='dask.distributed is an optional extra (pip install ".[dask]")')

KW = dict(claim="same-minimizers-as-clip", n_models=2, sizes=(32, 64), replicates=3, budget=0)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        yield c


def _doc(result):
    return json.dumps(result.to_dict(), sort_keys=True)


def test_local_cluster_and_scheduler_address_match_serial(cluster):
    serial = verify_variant(ONE_DIRECTIONAL, seed=2, **KW)
    on_cluster = verify_variant(ONE_DIRECTIONAL, seed=2, scheduler=cluster.scheduler_address, **KW)
    assert _doc(on_cluster) == _doc(serial)
    embedded = verify_variant(_kappa(0.3), seed=1, workers=2, **KW)
    assert _doc(embedded) == _doc(verify_variant(_kappa(0.3), seed=1, **KW))


def test_main_job_on_a_cluster_matches_serial(cluster, tmp_path):
    from proofs_checks.cli import main

    a, b = tmp_path / "serial.json", tmp_path / "cluster.json"
    args = ["--only", "thm2.8-closed-form", "--only", "lemma2.1-kernel", "--cases", "6", "--quiet"]
    assert main([*args, "--json", str(a)]) == 0
    assert main([*args, "--json", str(b), "--scheduler", cluster.scheduler_address]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_missing_dask_is_reported_with_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(ImportError, match=r'pip install "\.\[dask\]"'):
        with parallel.executor(workers=2):
            pass
    # the serial path never imports dask
    with parallel.executor(workers=1) as ex:
        assert ex.map(lambda x: x + 1, [1, 2]) == [2, 3]
