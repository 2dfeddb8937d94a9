"""Unit tests of proofs_checks/schedule.py: how an undecided model gets more data
(replicates doubled, then the largest batch doubled, then nothing) and the nominal cost
of a round, computed by hand."""
import pytest

from proofs_checks import schedule
from proofs_checks.schedule import MAX_REPLICATES, MAX_SIZE, next_data, round_cost


def test_constants_are_consistent():
    assert schedule.DEFAULT_REPLICATES < MAX_REPLICATES
    for sizes in schedule.DEFAULT_SIZES.values():
        assert list(sizes) == sorted(set(sizes)) and len(sizes) >= 2 and sizes[-1] < MAX_SIZE
    assert set(schedule.RATES) == {"numpy", "torch", "jax"} and min(schedule.RATES.values()) > 0


def test_replicates_double_first():
    assert next_data(8, 256) == (list(range(8, 16)), [])
    assert next_data(16, 256) == (list(range(16, 32)), [])
    assert next_data(2, 64) == ([2, 3], [])
    # capped at MAX_REPLICATES: from 20, only 20..31 are new
    assert next_data(20, 256) == (list(range(20, 32)), [])
    assert next_data(31, 256) == ([31], [])


def test_then_the_largest_batch_doubles_for_every_replicate():
    assert next_data(32, 256) == (list(range(32)), [512])
    assert next_data(32, 2048) == (list(range(32)), [4096])
    assert next_data(40, 1000) == (list(range(40)), [2000])  # more than the cap: all of them


def test_then_the_schedule_is_exhausted():
    assert next_data(32, 4096) is None
    assert next_data(32, 2049) is None  # 4098 > MAX_SIZE
    assert next_data(64, 3000) is None


def test_a_whole_schedule_from_the_defaults():
    """Replay the verifier's loop: 8 -> 16 -> 32 replicates, then N 256 -> ... -> 4096."""
    R, largest, steps = schedule.DEFAULT_REPLICATES, schedule.DEFAULT_SIZES["dot"][-1], []
    while (more := next_data(R, largest)) is not None:
        reps, new = more
        if new:
            assert reps == list(range(R))
            largest = new[0]
        else:
            assert reps[0] == R
            R = reps[-1] + 1
        steps.append((R, largest))
        assert len(steps) < 20
    assert steps == [(16, 256), (32, 256), (32, 512), (32, 1024), (32, 2048), (32, 4096)]


def test_round_cost_new_replicates_at_every_size_so_far():
    # 8 new replicates at 64, 128, 256 (a duplicate size counts once), each paired fit
    # costing N^2 x its mean evaluations there: 8 * (64^2 * 40 + 128^2 * 30 + 256^2 * 20) / rate
    counts = {64: 40.0, 128: 30.0, 256: 20.0}
    cost = round_cost([64, 128, 256, 128], list(range(8, 16)), [], counts, backend="numpy")
    assert cost == pytest.approx(8 * (64**2 * 40 + 128**2 * 30 + 256**2 * 20) / schedule.RATES["numpy"], rel=1e-14)


def test_round_cost_a_new_size_costs_what_the_largest_did():
    # 32 replicates at N = 512 only, not fitted yet: charged the evaluations seen at 256
    counts = {64: 40.0, 128: 30.0, 256: 20.0}
    cost = round_cost([64, 128, 256], list(range(32)), [512], counts)
    assert cost == pytest.approx(32 * 512**2 * 20 / schedule.RATES["numpy"], rel=1e-14)
    # once fitted there, its own count
    assert round_cost([64, 128, 256, 512], [0], [512], {**counts, 512: 50.0}) == \
        pytest.approx(512**2 * 50 / schedule.RATES["numpy"], rel=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_round_cost_scales_with_the_work_counted(backend):
    # a fit that does ten times the work (a kinked fit's sampling, a training field's flow)
    # costs ten times as much: the count, not the kind of loss, sets the price
    cheap = round_cost([64, 128], [0, 1], [], {64: 10.0, 128: 10.0}, backend=backend)
    assert cheap == pytest.approx(2 * (64**2 + 128**2) * 10 / schedule.RATES[backend], rel=1e-14)
    assert round_cost([64, 128], [0, 1], [], {64: 100.0, 128: 100.0}, backend=backend) == pytest.approx(10 * cheap)
    assert round_cost([64], [], [], {64: 10.0}, backend=backend) == 0.0


def test_round_cost_refuses_an_unknown_backend_and_no_counts():
    with pytest.raises(ValueError, match="backend='tf'"):
        round_cost([64], [0], [], {64: 1.0}, backend="tf")
    with pytest.raises(ValueError, match="evaluations="):
        round_cost([64], [0], [], {})
