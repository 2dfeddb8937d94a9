r"""The result of :func:`proofs_checks.fingerprint`: the measured map :math:`g(\sigma)` with
its intervals, the multi-pair measurements, the diagnosis, and their renderings (the
summary, the JSON document, a figure and a report folder) (MATH.md §4.4)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["KINDS", "PairModelResult", "Fingerprint"]

#: The machine-readable kinds of a diagnosis.
KINDS = ("clip", "proportional", "shifted", "nonlinear", "collapse", "mixing", "drift", "undetermined")


@dataclass
class PairModelResult:
    r"""One multi-pair model: the diagonal of its canonical map (correlation scale) with
    intervals, each pair's interaction with its one-pair model (estimate, lower, upper) and
    its standardised value, the off-diagonal mass and its p-value (Hotelling), the largest
    angle (radians) of :math:`M`'s singular vectors to the canonical axes, and the pairs kept,
    dropped, and kept by the one-pair map."""

    label: str
    sigma: list
    g: list
    g_ci: list
    interaction: list
    interaction_z: list
    mixing: float
    mixing_p: float
    angle: float
    kept: int
    dropped: int
    expected_kept: int

    def to_dict(self) -> dict:
        return {"label": self.label, "sigma": self.sigma, "g": [float(x) for x in self.g],
                "g_ci": [[float(a), float(b)] for a, b in self.g_ci],
                "interaction": [[float(x) for x in row] for row in self.interaction],
                "mixing": float(self.mixing), "mixing_p": float(self.mixing_p),
                "max_angle": float(self.angle), "kept": self.kept, "dropped": self.dropped,
                "kept_by_one_pair_map": self.expected_kept}


def _f(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


@dataclass
class Fingerprint:
    r"""Result of :func:`proofs_checks.fingerprint`.

    Attributes (the same keys in :meth:`to_dict`)
    ----------------------------------------------
    sigma : ndarray (n,)
        The grid of canonical correlations.
    g : ndarray (n,)
        The estimated map :math:`g(\sigma)` (correlation scale; under L2 the canonical
        cross coefficient put through CLIP's L2 map, so that CLIP is the identity).
    g_ci : ndarray (n, 2)
        Intervals at ``level``.
    kind : str
        One of :data:`KINDS`.
    factor : dict
        ``{"c", "ci"}``: the proportional factor with its interval (meaningful for
        ``"proportional"`` and ``"clip"``; otherwise flagged with a ``note``).
    rank : int or None
        Pairs kept on the multi-pair models (None when none were run).
    mixing : float
        Largest off-diagonal mass of :math:`M` relative to its diagonal.
    separable : bool
        Whether the pairs' coefficients on multi-pair models agree with the one-pair map.
    diagnosis : str
        The one line.
    """

    loss_name: str
    similarity: str
    seed: int
    sizes: list
    replicates: int
    level: float
    sigma: np.ndarray
    g: np.ndarray
    g_ci: np.ndarray
    g_se: np.ndarray
    drifting: list
    kind: str
    factor: dict
    shift: dict
    rank: int | None
    mixing: float
    separable: bool
    diagnosis: str
    tests: dict
    pair_models: list = field(default_factory=list)
    closed_form: dict | None = None
    closed_form_fn: Callable | None = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    interface: dict = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        """Whether any grid point still moves with N beyond the extrapolation."""
        return any(self.drifting)

    # ------------------------------------------------------------------
    def summary(self) -> str:
        """A compact table: the map, the multi-pair models, the diagnosis, numbered notes."""
        lines = [f"{self.loss_name}: spectral fingerprint ({self.similarity} similarity): {self.kind.upper()}",
                 f"  {self.diagnosis}",
                 f"  {'sigma':>6}  {'g(sigma)':>9}  {int(round(self.level * 100))} % interval"
                 + ("   closed form" if self.closed_form else "")]
        for i, s in enumerate(self.sigma):
            row = f"  {s:6.3f}  {self.g[i]:9.4f}  [{self.g_ci[i, 0]:.4f}, {self.g_ci[i, 1]:.4f}]"
            if self.closed_form:
                row += f"   {self.closed_form['values'][i]:.4f}"
            if self.drifting[i]:
                row += "  drifting"
            lines.append(row)
        for p in self.pair_models:
            inter = ", ".join(f"{d:+.3f} [{a:+.3f}, {b:+.3f}]" for d, a, b in p.interaction)
            lines.append(f"  {p.label}: g = {', '.join(f'{x:.4f}' for x in p.g)}; interaction {inter}; "
                         f"mixing {p.mixing:.3g} (p = {p.mixing_p:.2g}), angle {math.degrees(p.angle):.1f} deg; "
                         f"kept {p.kept} of {len(p.sigma)}")
        lines.append(f"  rank {self.rank if self.rank is not None else 'not measured'}, separable "
                     f"{'yes' if self.separable else 'no'}, mixing {self.mixing:.3g}; "
                     f"N = {', '.join(map(str, self.sizes))}, {self.replicates} replicates, {self.seconds:.1f} s")
        if self.closed_form:
            where = "inside every interval" if self.closed_form["covered"] else "outside some interval"
            lines.append(f"  closed form: {where}"
                         f" (largest |z| = {self.closed_form['max_z']:.2f})")
        for k, note in enumerate(self.notes, 1):
            lines.append(f"  [{k}] {note}")
        return "\n".join(lines)

    __str__ = summary

    def to_dict(self) -> dict:
        return {
            "loss": self.loss_name, "similarity": self.similarity, "seed": self.seed, "sizes": list(self.sizes),
            "replicates": self.replicates, "level": self.level,
            "sigma": [float(s) for s in self.sigma], "g": [float(x) for x in self.g],
            "g_ci": [[float(a), float(b)] for a, b in self.g_ci], "g_se": [float(x) for x in self.g_se],
            "drifting": list(self.drifting), "drift": self.drift,
            "kind": self.kind,
            "factor": {k: (v if not isinstance(v, float) else _f(v)) for k, v in self.factor.items()},
            "shift": {k: (_f(v) if not isinstance(v, list) else [_f(x) for x in v]) for k, v in self.shift.items()},
            "rank": self.rank, "mixing": _f(self.mixing), "separable": self.separable,
            "diagnosis": self.diagnosis,
            "tests": {k: (v if isinstance(v, bool) else _f(v)) for k, v in self.tests.items()},
            "pair_models": [p.to_dict() for p in self.pair_models], "closed_form": self.closed_form,
            "notes": list(self.notes), "seconds": self.seconds, **self.interface,
        }

    # ------------------------------------------------------------------
    def figure(self, ax=None, label=None, color=None):
        r""":math:`g(\sigma)` with its interval band, CLIP's identity line and the user's closed
        form (if given); draws on ``ax`` (a new figure if None) and returns the figure."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 4.2))
        else:
            fig = ax.figure
        s = np.asarray(self.sigma)
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="CLIP: g = sigma" if label is None else None)
        line, = ax.plot(s, self.g, "o-", ms=3.5, color=color, label=label or f"{self.loss_name} ({self.kind})")
        ax.fill_between(s, self.g_ci[:, 0], self.g_ci[:, 1], color=line.get_color(), alpha=0.25, lw=0)
        if self.closed_form_fn is not None:
            xs = np.linspace(max(1e-3, s[0] * 0.5), min(0.999, s[-1] + 0.05), 200)
            ax.plot(xs, [self.closed_form_fn(float(x)) for x in xs], color=line.get_color(), lw=1, ls=":",
                    label="closed form" if label is None else None)
        ax.set_xlim(0, 1)
        ax.set_xlabel("canonical correlation sigma")
        ax.set_ylabel("g(sigma)")
        if label is None:
            ax.set_title(f"{self.loss_name}: {self.kind}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        return fig

    def figures(self) -> list:
        """The figures of the report (one: the map)."""
        return [self.figure()]

    def write_report(self, directory) -> Path:
        """Write ``report.md``, ``result.json`` and ``fingerprint.png`` to ``directory``."""
        import matplotlib.pyplot as plt

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        fig = self.figure()
        fig.savefig(d / "fingerprint.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        md = [f"# Spectral fingerprint of `{self.loss_name}`", "", f"**{self.kind}**: {self.diagnosis}", "",
              "![g(sigma)](fingerprint.png)", "", "```", self.summary(), "```", ""]
        (d / "report.md").write_text("\n".join(md), encoding="utf-8")
        return d
