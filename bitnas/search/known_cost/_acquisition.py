"""Expected hypervolume improvement of (objective, exact cost) fronts, and the warp that
lets a Gaussian model fit heavy-tailed objectives.

Because cost is exact, EHVI has a closed form in two objectives: with the current front's best
objective ``b_k`` on each cost segment ``k`` right of the candidate's cost (width ``w_k`` on the
normalised cost axis), the improvement of a candidate with objective ``A`` is
``sum_k w_k max(0, A - b_k)``. For ``A ~ N(mu, s^2)``, ``E[max(0, A - b)] = (mu - b) Phi(z) +
s phi(z)`` with ``z = (mu - b) / s`` (``expected_improvement_2d``). When the model is Gaussian
in a warped space (``Warp``: the objective's normal scores), ``A = g^-1(Z)`` is not Gaussian;
the expectation is then taken by Gauss-Hermite quadrature (``expected_improvement_warped``).
No Monte Carlo, no cost model; none of Optuna's or scikit-learn's samplers offer this (BoTorch's
qEHVI would model cost too), which is why it is written here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "Warp",
    "expected_improvement_2d",
    "expected_improvement_warped",
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
    """A monotone map ``g`` of objective values to normal scores, fitted on observed values,
    and its inverse.

    ``g(y) = Phi^-1((rank(y) - 1/2) / n)`` (ties share their mean rank): a Gaussian-copula
    transform. Broken architectures (an accuracy of 10% among 90% ones) and heavy tails then
    no longer set the model's scale, which is what made an untransformed GP's intervals 12-15
    points wide where front steps differ by 0.1-1 point. scikit-learn's ``QuantileTransformer``
    does the forward map but clips its inverse at the observed extremes, and a proposal can
    only improve a front by exceeding them, hence this class: beyond the observed range the
    inverse is extended linearly, with the slope of the outer tenth of the scores.
    """

    def __init__(self, y: np.ndarray) -> None:
        from scipy.stats import norm, rankdata

        y = np.asarray(y, dtype=float)
        n = len(y)
        if n == 0:
            raise ValueError("Warp needs at least one value")
        self.z_obs: np.ndarray = norm.ppf((rankdata(y) - 0.5) / n) if n > 1 else np.zeros(1)
        order = np.argsort(self.z_obs, kind="stable")
        zs, ys = self.z_obs[order], y[order]
        # one knot per distinct value (tied values share one score)
        self._z, idx = np.unique(zs, return_index=True)
        self._y = ys[idx]
        span = float(np.ptp(y)) or max(abs(float(y[0])), 1.0)
        k = max(1, len(self._z) // 10)
        if len(self._z) > 1:
            lo = (self._y[k] - self._y[0]) / (self._z[k] - self._z[0])
            hi = (self._y[-1] - self._y[-1 - k]) / (self._z[-1] - self._z[-1 - k])
        else:
            lo = hi = span / 4.0
        floor = 1e-3 * span  # a flat tail would make improvements beyond it impossible
        self._slope_lo, self._slope_hi = max(lo, floor), max(hi, floor)

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Normal scores of (new) objective values, interpolated between the knots."""
        y = np.asarray(y, dtype=float)
        z = np.interp(y, self._y, self._z)
        z = np.where(y > self._y[-1], self._z[-1] + (y - self._y[-1]) / self._slope_hi, z)
        out: np.ndarray = np.where(
            y < self._y[0], self._z[0] - (self._y[0] - y) / self._slope_lo, z
        )
        return out

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Objective values of normal scores (piecewise linear, linear tails)."""
        z = np.asarray(z, dtype=float)
        y = np.interp(z, self._z, self._y)
        y = np.where(z > self._z[-1], self._y[-1] + (z - self._z[-1]) * self._slope_hi, y)
        out: np.ndarray = np.where(
            z < self._z[0], self._y[0] - (self._z[0] - z) * self._slope_lo, y
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
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    weights = weights / weights.sum()
    width = _widths(x, edges)  # [n, k]
    a = warp.inverse(
        np.asarray(mu_z, dtype=float)[:, None]
        + np.maximum(np.asarray(sd_z, dtype=float), 1e-9)[:, None] * nodes[None, :]
    )  # [n, q]
    level = best + np.broadcast_to(np.asarray(margin, dtype=float), best.shape)  # [k]
    gain = np.maximum(a[:, :, None] - level[None, None, :], 0.0)  # [n, q, k]
    out: np.ndarray = np.einsum("q,nqk,nk->n", weights, gain, width)
    return out
