r"""Statistics of the notebooks' reports: log-log slopes with their t interval, bootstrap
percentile intervals."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # a source checkout without ``pip install -e .``
    sys.path.insert(0, str(_ROOT))

from numerics._validation import as_float_array, fail  # noqa: E402

__all__ = ["loglog_slope", "percentile_interval"]


def loglog_slope(n, values, level: float = 0.95):
    r"""Least-squares slope of :math:`\log y` against :math:`\log n`, with a t confidence interval.

    Every ``(n_i, y_i)`` is one independent run (repeats at the same ``n``
    are separate points), so the ordinary least-squares standard error with
    ``len(n) - 2`` degrees of freedom applies.

    Returns
    -------
    slope, intercept : float
        :math:`\log y \approx \text{intercept} + \text{slope}\,\log n`.
    interval : tuple of float
        The ``level`` confidence interval of the slope.
    """
    from scipy import stats

    x = np.log(as_float_array("n", n, ndim=1))
    y = np.log(as_float_array("values", values, ndim=1))
    if x.shape != y.shape or x.size < 3 or np.ptp(x) == 0:
        raise fail("n", n, "at least 3 points with at least 2 distinct n, as many as values")
    X = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = x.size - 2
    se = math.sqrt(float(resid @ resid) / dof / float(((x - x.mean()) ** 2).sum()))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return float(coef[1]), float(coef[0]), (float(coef[1] - half), float(coef[1] + half))


def percentile_interval(samples, level: float = 0.95):
    """Equal-tailed percentile interval of bootstrap ``samples`` (an array of replicates)."""
    samples = as_float_array("samples", samples, ndim=1)
    if samples.size < 2:
        raise fail("samples", samples, "at least 2 bootstrap replicates")
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
