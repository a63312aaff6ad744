"""Expected hypervolume improvement of (objective, exact cost) fronts, and the warp that
lets a Gaussian model fit heavy-tailed objectives.

Because cost is exact, EHVI has a closed form in two objectives: with the current front's best
objective ``b_k`` on each cost segment ``k`` right of the candidate's cost (width ``w_k`` on the
normalised cost axis), the improvement of a candidate with objective ``A`` is
``sum_k w_k max(0, A - b_k)``. For ``A ~ N(mu, s^2)``, ``E[max(0, A - b)] = (mu - b) Phi(z) +
s phi(z)`` with ``z = (mu - b) / s`` (``expected_improvement_2d``). When the model is Gaussian
in a warped space (``Warp``: a robust standardisation), ``A = g^-1(Z)`` is not Gaussian;
the expectation is then taken by Gauss-Hermite quadrature (``expected_improvement_warped``).
No Monte Carlo, no cost model; none of Optuna's or scikit-learn's samplers offer this (BoTorch's
qEHVI would model cost too), which is why it is written here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "Warp",
    "choose",
    "expected_improvement_2d",
    "expected_improvement_warped",
    "expected_improvements_warped",
    "front_segments",
]

#: Gauss-Hermite nodes of the expectation over a warped Gaussian (weight exp(-x^2 / 2)).
QUADRATURE_NODES = 24


def front_segments(
    xs: Sequence[float], ys: Sequence[float], reference: float
) -> tuple[np.ndarray, np.ndarray]:
    """The attainment staircase of points (x = normalised cost in [0, 1], minimised; y =
    objective, maximised): breakpoints ``edges`` (ascending, ending at 1) and ``best[i]``, the
    best y reachable at cost <= any x in [edges[i], edges[i+1]) (``reference`` where none).
    """
    order = np.argsort(xs, kind="stable")
    edges, best = [0.0], [reference]
    for i in order:
        x, y = float(min(max(xs[i], 0.0), 1.0)), float(ys[i])
        if y <= best[-1]:
            continue
        if x == edges[-1]:
            best[-1] = y
        else:
            edges.append(x)
            best.append(y)
    edges.append(1.0)
    return np.asarray(edges), np.asarray(best)


def _widths(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """[n, segments]: how much of each staircase segment lies right of each candidate."""
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)[:, None]
    out: np.ndarray = np.clip(edges[None, 1:] - np.maximum(edges[None, :-1], x), 0.0, None)
    return out


def expected_improvement_2d(
    x: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    edges: np.ndarray,
    best: np.ndarray,
) -> np.ndarray:
    """Exact expected hypervolume improvement of candidates at normalised costs ``x`` whose
    objective is ``N(mu, sigma^2)``, over the staircase (``edges``, ``best``) of
    ``front_segments``: for each segment right of ``x``, its overlapping width times
    ``E[max(0, A - best)]``."""
    from scipy.stats import norm

    width = _widths(x, edges)
    s = np.maximum(np.asarray(sigma, dtype=float), 1e-12)[:, None]
    d = np.asarray(mu, dtype=float)[:, None] - best[None, :]
    z = d / s
    gain = d * norm.cdf(z) + s * norm.pdf(z)
    out: np.ndarray = (width * gain).sum(axis=1)
    return out


class Warp:
    """A monotone map ``g`` of objective values to a standardised scale the Gaussian model
    fits, fitted on observed values, and its inverse.

    Values above ``floor = Q1 - 1.5 IQR`` (Tukey's fence of the observed values) are kept
    linear; values below it -- broken architectures, at 10% among 90% ones -- are pulled
    towards it logarithmically, ``floor - d log(1 + (floor - y) / d)`` with ``d`` the
    interquartile range; the result is standardised. A few broken architectures then no longer
    set the model's scale (what made an untransformed GP's intervals 12-15 points wide where
    front steps differ by 0.1-1 point), while differences among good architectures keep their
    size: a rank (normal-score) transform, tried first, stretched the crowded top of the
    distribution and made the model chase noise (the measurements: docs/BENCHMARKS.md).
    scikit-learn's transformers offer neither the compressed tail nor an inverse that extends
    past the observed range, hence this class.
    """

    def __init__(self, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=float)
        if len(y) == 0:
            raise ValueError("Warp needs at least one value")
        q1, q3 = np.percentile(y, [25, 75])
        iqr = float(q3 - q1)
        span = float(np.ptp(y)) or max(abs(float(y[0])), 1.0)
        self._d = iqr if iqr > 0 else span
        self._floor = float(q1 - 1.5 * iqr) if len(y) >= 4 else float(y.min())
        c = self._compress(y)
        self._mean, self._sd = float(c.mean()), float(c.std()) or span
        self.z_obs: np.ndarray = (c - self._mean) / self._sd

    def _compress(self, y: np.ndarray) -> np.ndarray:
        below = np.maximum(self._floor - y, 0.0)
        out: np.ndarray = np.where(below > 0, self._floor - self._d * np.log1p(below / self._d), y)
        return out

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Standardised scores of (new) objective values."""
        out: np.ndarray = (self._compress(np.asarray(y, dtype=float)) - self._mean) / self._sd
        return out

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Objective values of standardised scores."""
        c = np.asarray(z, dtype=float) * self._sd + self._mean
        below = np.maximum(self._floor - c, 0.0)
        # the compressed tail is bounded by nothing: exp of a large argument saturates
        out: np.ndarray = np.where(
            below > 0, self._floor - self._d * np.expm1(np.minimum(below / self._d, 50.0)), c
        )
        return out


def expected_improvement_warped(
    x: np.ndarray,
    mu_z: np.ndarray,
    sd_z: np.ndarray,
    warp: Warp,
    edges: np.ndarray,
    best: np.ndarray,
    margin: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Expected hypervolume improvement, in objective units, of candidates whose warped
    objective is ``N(mu_z, sd_z^2)``: ``sum_k w_k E[max(0, g^-1(Z) - best_k - margin_k)]``.

    ``margin`` (per segment, or one value) is the improvement that counts as noise: a
    candidate that can only tie the front within it scores 0.
    """
    return expected_improvements_warped(x, mu_z, sd_z, warp, edges, best, [margin])[0]


def expected_improvements_warped(
    x: np.ndarray,
    mu_z: np.ndarray,
    sd_z: np.ndarray,
    warp: Warp,
    edges: np.ndarray,
    best: np.ndarray,
    margins: Sequence[np.ndarray | float],
) -> list[np.ndarray]:
    """``expected_improvement_warped`` at several margins, sharing the quadrature's nodes
    (the warp's inverse at every node is the costly part)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    weights = weights / weights.sum()
    width = _widths(x, edges)  # [n, k]
    a = warp.inverse(
        np.asarray(mu_z, dtype=float)[:, None]
        + np.maximum(np.asarray(sd_z, dtype=float), 1e-9)[:, None] * nodes[None, :]
    )  # [n, q]
    out = []
    for margin in margins:
        level = best + np.broadcast_to(np.asarray(margin, dtype=float), best.shape)  # [k]
        gain = np.maximum(a[:, :, None] - level[None, None, :], 0.0)  # [n, q, k]
        out.append(np.einsum("q,nqk,nk->n", weights, gain, width))
    return out


def choose(beyond: np.ndarray, plain: np.ndarray, cost: np.ndarray, noise_only: float) -> int:
    """The candidate to propose: among those whose expected improvement beyond the noise
    (``beyond``) is at least ``noise_only`` times the best one's -- the ones that can improve
    the front by more than noise --, the one of best expected improvement (``plain``), ties
    to the cheaper. Ranking by ``beyond`` itself would add an exploration bonus (EI's xi)
    that shuns refining the front's steps, most of what is left to gain late in a study
    (NAS-Bench-201 HV@100: docs/BENCHMARKS.md). If none can, the best ``plain`` one."""
    top = float(np.max(beyond)) if len(beyond) else 0.0
    eligible = beyond >= noise_only * top if top > 0 else np.ones(len(plain), dtype=bool)
    return int(np.lexsort((cost, -plain, ~eligible))[0])
