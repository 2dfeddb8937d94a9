r"""The registry of checks and the runner behind the main job.

A *check* holds numerics against a statement of ``theory`` by one *method*
(``closed-form``, ``optimization``, ``monte-carlo``, ``symbolic``,
``quadrature``) over a number of *cases*.  Each case yields an error and the
tolerance it must stay under; a check passes iff every case does.

Checks live in the modules of ``proofs_checks.checks`` and register
themselves with :func:`register`; :func:`all_checks` imports those modules
in sorted order.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from numerics._validation import fail
from numerics.models import GaussianModel, default_models

__all__ = [
    "METHODS",
    "CaseResult",
    "CheckResult",
    "Check",
    "register",
    "all_checks",
    "select_checks",
    "run_check",
    "run_checks",
]

METHODS = ("closed-form", "optimization", "monte-carlo", "symbolic", "quadrature")


@dataclass(frozen=True)
class CaseResult:
    """One case of a check: the error found and the tolerance it must stay under."""

    label: str
    error: float
    tolerance: float
    detail: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error)) and self.error <= self.tolerance

    @property
    def ratio(self) -> float:
        if not np.isfinite(self.error):
            return math.inf
        if self.tolerance == 0:
            return 0.0 if self.error == 0 else math.inf
        return self.error / self.tolerance


@dataclass
class CheckResult:
    """All cases of one check, with the summary the report prints."""

    name: str
    statement: str
    method: str
    description: str
    cases: list
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return len(self.cases) > 0 and all(c.passed for c in self.cases)

    @property
    def worst(self) -> CaseResult | None:
        return max(self.cases, key=lambda c: c.ratio) if self.cases else None

    @property
    def max_error(self) -> float:
        return self.worst.error if self.cases else math.nan

    @property
    def tolerance(self) -> float:
        return self.worst.tolerance if self.cases else math.nan

    @property
    def mde(self) -> float | None:
        """Smallest minimum detectable effect among the cases that report one
        (``detail["mde"]``, Monte Carlo checks), or None."""
        values = [c.detail["mde"] for c in self.cases if "mde" in c.detail]
        return float(min(values)) if values else None

    def to_dict(self) -> dict:
        worst = self.worst
        return {
            "check": self.name,
            "statement": self.statement,
            "method": self.method,
            "cases": len(self.cases),
            "max_error": float(worst.error) if worst else None,
            "tolerance": float(worst.tolerance) if worst else None,
            "worst_case": worst.label if worst else None,
            "passed": self.passed,
            "mde": self.mde,
        }


CheckFunction = Callable[[list, np.random.Generator], list]


@dataclass(frozen=True)
class Check:
    """A registered check.

    ``func(models, rng) -> list[CaseResult]`` receives the drawn Gaussian
    models (one case each, for model-based checks) and a seeded generator.
    """

    name: str
    statement: str
    method: str
    description: str
    func: CheckFunction

    def run(self, models: list, rng: np.random.Generator) -> CheckResult:
        t0 = time.perf_counter()
        cases = list(self.func(models, rng))
        return CheckResult(self.name, self.statement, self.method, self.description,
                           cases, time.perf_counter() - t0)


_REGISTRY: dict[str, Check] = {}


def register(name: str, *, statement: str, method: str, description: str):
    """Decorator registering ``func(models, rng)`` as a check of ``statement`` by ``method``."""
    if method not in METHODS:
        raise fail("method", method, "one of " + ", ".join(METHODS))

    def deco(func):
        if name in _REGISTRY:
            raise fail("name", name, "a check name not registered yet")
        _REGISTRY[name] = Check(name, statement, method, description, func)
        return func

    return deco


def all_checks() -> list[Check]:
    """Every registered check, in a stable order (statement, then name)."""
    from . import checks as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        importlib.import_module(f"{pkg.__name__}.{mod}")
    return sorted(_REGISTRY.values(), key=lambda c: (c.statement, c.name))


def select_checks(only: Iterable[str] | None = None) -> list[Check]:
    """Checks whose name, statement or method matches one of ``only`` (case-insensitive).

    ``only=["Theorem 3.2"]`` selects every check of that statement,
    ``only=["symbolic"]`` every symbolic check, ``only=["g1-optimization"]``
    one check by name.  Raises :class:`numerics.InvalidInputError` when a
    selector matches nothing.
    """
    checks = all_checks()
    if not only:
        return checks
    chosen = []
    for sel in only:
        key = sel.strip().lower()
        hits = [c for c in checks if key in (c.name.lower(), c.statement.lower(), c.method.lower())
                or key == c.statement.lower().replace(" ", "")]
        if not hits:
            names = sorted({c.statement for c in checks} | {c.name for c in checks})
            raise fail("only", sel, "a check name, statement or method among: " + ", ".join(names))
        chosen += [c for c in hits if c not in chosen]
    return sorted(chosen, key=lambda c: (c.statement, c.name))


def run_check(check: Check, *, seed: int = 0, cases: int = 24, models: list | None = None) -> CheckResult:
    """Run one check on ``cases`` default models drawn from ``seed``.

    Each check gets its own generator, derived from ``seed`` and its name, so
    that selecting a subset with ``--only`` does not change any result.
    """
    models = default_models(seed, cases) if models is None else models
    digest = sum((i + 1) * ord(ch) for i, ch in enumerate(check.name))
    rng = np.random.default_rng([seed, digest])
    return check.run(models, rng)


def run_checks(checks: list[Check] | None = None, *, seed: int = 0, cases: int = 24,
               progress: Callable[[int, int, CheckResult], None] | None = None) -> list[CheckResult]:
    """Run ``checks`` (default: all) and return their results in order."""
    checks = all_checks() if checks is None else checks
    models = default_models(seed, cases)
    results = []
    for k, check in enumerate(checks):
        res = run_check(check, seed=seed, cases=cases, models=models)
        results.append(res)
        if progress is not None:
            progress(k + 1, len(checks), res)
    return results
