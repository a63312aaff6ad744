"""The known-cost sampler's model of the objective: a Gaussian process on warped values,
with hyperparameters fitted on a bounded subsample and a posterior over a bounded set.

- Targets are the objective's robust scores (``Warp``): robust to broken architectures and
  heavy tails, and the model's 2-sigma intervals, mapped back through the warp, are intervals
  in objective units (the benchmark measures how often they hold held-out truths), widened
  where leave-one-out residuals or the random start-up draws show them too narrow.
- A linear trend in the log cost (ridge regression on every observation) is fitted first
  and the GP models what it leaves (a GP with an explicit basis function, Rasmussen &
  Williams 2006, section 2.7). A constant-mean GP reverts to the observed mean away from
  its data: an untried cost level is predicted near the average of what was tried, which
  under a front-seeking search underrates good untried architectures (on NAS-Bench-201 it
  predicted the best untried cells 1.4-4.8 points too low, and a seed that met this early
  lost a third of the front). Only the cost: a trend in every feature (bits, widths, counts)
  extrapolated too far on the MNIST-1D table (36.4 trials to 99% HV instead of 26.7).
- Kernel hyperparameters (ARD Matern 5/2, categorical dimensions by Hamming distance, noise)
  are fitted by Optuna's own GP code (``optuna._gp``, the model behind ``GPSampler``: priors
  that keep small-data fits sane, warm starts from the previous fit), on at most ``n_fit``
  observations.
- The posterior is computed here in numpy over at most ``n_post`` observations, with the
  kernel written as matrix products (one-hot codes for the Hamming part): Optuna's posterior
  materialises an [n_candidates, n_observations, n_features] tensor, 5-10x slower on the
  candidate pools scored at every ask. Both bounds keep an ask's cost flat as a study grows
  (no cubic growth without bound).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from bitnas.search.known_cost._acquisition import Warp

__all__ = ["Surrogate"]

#: Observations the hyperparameters are fitted on, and the posterior conditions on.
N_FIT = 128
N_POST = 300
#: Ridge penalty of the linear trend's slope (the log cost is scaled to about [0, 1]).
TREND_RIDGE = 1.0


def _select(priority: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``n`` observations: two thirds of them the most relevant (lowest
    ``priority``: nearest the front), the rest drawn at random from the others, so the model
    stays globally informed while it is precise where proposals are made."""
    m = len(priority)
    if m <= n:
        return np.arange(m)
    best = np.argsort(priority, kind="stable")[: (2 * n) // 3]
    rest = np.setdiff1d(np.arange(m), best)
    extra = rng.choice(rest, size=n - len(best), replace=False)
    return np.sort(np.concatenate([best, extra]))


class Surrogate:
    """Fit on features ``X`` ([n, d]; columns flagged in ``is_categorical`` hold integer codes,
    the others values scaled to about [0, 1]) and objective values ``y`` (maximised)."""

    def __init__(
        self, is_categorical: np.ndarray, seed: int | None = None, trend_column: int = -1
    ) -> None:
        self.is_categorical = np.asarray(is_categorical, dtype=bool)
        self.trend_column = trend_column  # the feature holding the (scaled) log cost
        self._rng = np.random.default_rng(seed)
        self._gpr: object | None = None  # optuna._gp.gp.GPRegressor of the last fit
        self.warp: Warp | None = None

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        priority: np.ndarray,
        refit: bool,
        random: np.ndarray | None = None,
    ) -> None:
        """Warp ``y``, re-estimate hyperparameters if ``refit`` (or never fitted), and
        condition the posterior on the most relevant observations (``priority``, lower is
        more relevant). ``random``: indices of observations drawn at random from the
        feasible space (the start-up trials); they calibrate the reported intervals."""
        import torch
        from optuna._gp.gp import fit_kernel_params
        from optuna._gp.prior import DEFAULT_MINIMUM_NOISE_VAR, default_log_prior

        X = np.asarray(X, dtype=float)
        self.warp = Warp(y)
        H = self._basis(X)
        pen = np.full(H.shape[1], TREND_RIDGE)
        pen[0] = 0.0  # the intercept is not shrunk
        self._beta = np.linalg.solve(H.T @ H + np.diag(pen), H.T @ self.warp.z_obs)
        z = self.warp.z_obs - H @ self._beta  # what the trend leaves, for the GP
        if refit or self._gpr is None:
            idx = _select(priority, N_FIT, self._rng)
            zf = z[idx]
            zf = (zf - zf.mean()) / (zf.std() or 1.0)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # small matrices; threads fight the trials for cores
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._gpr = fit_kernel_params(
                        X=X[idx],
                        Y=zf,
                        is_categorical=self.is_categorical,
                        log_prior=default_log_prior,
                        minimum_noise=DEFAULT_MINIMUM_NOISE_VAR,
                        deterministic_objective=False,
                        gpr_cache=self._gpr,  # type: ignore[arg-type]
                    )
            finally:
                torch.set_num_threads(threads)
        gpr = self._gpr
        self.inv_sq_ls = gpr.inverse_squared_lengthscales.detach().numpy().copy()  # type: ignore[attr-defined]
        self.scale = float(gpr.kernel_scale)  # type: ignore[attr-defined]
        self.noise = float(gpr.noise_var)  # type: ignore[attr-defined]
        idx = _select(priority, N_POST, self._rng)
        self._X = X[idx]
        zp = z[idx]
        self._z_mean, self._z_sd = float(zp.mean()), float(zp.std() or 1.0)
        K = self._kernel(self._X, self._X)
        K[np.diag_indices_from(K)] += self.noise
        from scipy.linalg import cho_factor, cho_solve, solve_triangular

        self._chol = cho_factor(K, lower=True)
        self._alpha = cho_solve(self._chol, (zp - self._z_mean) / self._z_sd)
        # L^-1 once per fit: the variances of a pool are then one matrix product (BLAS
        # GEMM), 2-3x faster than a triangular solve with the pool as right-hand sides
        self._linv = solve_triangular(self._chol[0], np.eye(len(K)), lower=True, check_finite=False)
        # leave-one-out residuals in closed form (z_i = alpha_i / sqrt([K^-1]_ii)): the
        # factor that makes 95% of them fall within 2 sigma widens the intervals the model
        # reports (``interval``) when its own are too narrow -- a MAP GP ignores the
        # uncertainty of its hyperparameters and its trend (on NAS-Bench-201 its 2-sigma
        # intervals held 70-77% of untried truths; scaled, 85-86%)
        loo = self._alpha / np.sqrt((self._linv * self._linv).sum(0))
        self.calibration = max(1.0, float(np.quantile(np.abs(loo), 0.95)) / 2.0)
        if random is not None:
            self.calibration = max(self.calibration, self._held_out_rms(X, z, idx, random))

    def _held_out_rms(
        self, X: np.ndarray, z: np.ndarray, idx: np.ndarray, random: np.ndarray
    ) -> float:
        """The RMS z-score of the randomly drawn observations, each predicted by the
        posterior of the others without any of them (the hyperparameters are the fit's).

        Why: LOO residuals measure the model where the search went; a front-seeking search
        leaves its data near the front, where the objective is smoothest, so on
        NAS-Bench-201 the untried cells' z-scores had a spread of 1.5-2.4 while LOO's 95%
        quantile asked for a factor of 1.0-1.5 (leaving out whole neighbourhoods instead
        did not close the gap: the shift is in the objective, not the distance). Random
        draws are the one unbiased sample of what is untried; held out together, they
        measure how far the model is off there. Gaussian z-scores of spread ``f`` put 95%
        within ``2 f``; with only the start-up's few draws the RMS estimates ``f`` more
        stably than a quantile would, and a new z-score over an RMS of n of them is
        Student-t with n degrees of freedom, so the factor is the RMS times
        ``t_0.975(n) / z_0.975`` (1.18 for 8 draws; 0 where there are too few)."""
        from scipy.linalg import cho_factor, cho_solve
        from scipy.stats import norm, t

        held = np.intersect1d(np.asarray(random, dtype=int), np.arange(len(z)))
        rest = np.setdiff1d(idx, held)
        if len(held) < 4 or len(rest) < 4:
            return 0.0
        r = (z - self._z_mean) / self._z_sd
        K = self._kernel(X[rest], X[rest])
        K[np.diag_indices_from(K)] += self.noise
        ks = self._kernel(X[held], X[rest])
        chol = cho_factor(K, lower=True)
        mu = ks @ cho_solve(chol, r[rest])
        var = self.scale + self.noise - np.einsum("ij,ji->i", ks, cho_solve(chol, ks.T))
        zs = (r[held] - mu) / np.sqrt(np.clip(var, 1e-12, None))
        rms = float(np.sqrt(np.mean(zs * zs)))
        return rms * float(t.ppf(0.975, len(held)) / norm.ppf(0.975))

    def _basis(self, X: np.ndarray) -> np.ndarray:
        """The trend's regressors: an intercept and the log cost."""
        j = self.trend_column
        return np.concatenate([np.ones((len(X), 1)), X[:, j : j + 1 if j != -1 else None]], axis=1)

    @property
    def noise_sd_z(self) -> float:
        """The fitted noise, as a standard deviation in warped units."""
        return math.sqrt(self.noise) * self._z_sd

    # -- the kernel as matrix products -----------------------------------------------------
    def _embed(self, A: np.ndarray, weighted: bool, n_codes: list[int]) -> np.ndarray:
        """Rows whose dot products give the kernel's distance: continuous columns scaled by
        their inverse length scales; categorical ones one-hot (weighted on one side), since
        ``w [a != b] = w - w onehot(a) . onehot(b)``."""
        w = self.inv_sq_ls
        cont = ~self.is_categorical
        parts = [A[:, cont] * np.sqrt(w[cont])]
        for j, k in zip(np.flatnonzero(self.is_categorical), n_codes, strict=True):
            codes = A[:, j].astype(int)
            parts.append(np.eye(k)[codes] * (w[j] if weighted else 1.0))
        return np.concatenate(parts, axis=1)

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        nc = int((~self.is_categorical).sum())
        n_codes = [
            int(max(A[:, j].max(initial=0), B[:, j].max(initial=0))) + 1
            for j in np.flatnonzero(self.is_categorical)
        ]
        ea, eb = self._embed(A, True, n_codes), self._embed(B, False, n_codes)
        ca, cb = ea[:, :nc], eb[:, :nc]
        d2 = (ca * ca).sum(1)[:, None] + (cb * cb).sum(1)[None, :] - 2.0 * ca @ cb.T
        if ea.shape[1] > nc:
            d2 += float(self.inv_sq_ls[self.is_categorical].sum()) - ea[:, nc:] @ eb[:, nc:].T
        r = np.sqrt(5.0 * np.clip(d2, 0.0, None))
        out: np.ndarray = self.scale * (1.0 + r + r * r / 3.0) * np.exp(-r)
        return out

    # -- prediction ------------------------------------------------------------------------
    def predict(self, X: np.ndarray, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the warped objective at ``X``. With
        ``noise`` the deviation includes the observation noise (intervals for what a trial
        would report); without it, only the model's uncertainty about the function, which is
        what a proposal can learn about."""
        X = np.asarray(X, dtype=float)
        Ks = self._kernel(X, self._X)
        mu = Ks @ self._alpha
        v = Ks @ self._linv.T
        var = np.clip(self.scale - (v * v).sum(1), 0.0, None) + (self.noise if noise else 0.0)
        trend = self._basis(X) @ self._beta
        return mu * self._z_sd + self._z_mean + trend, np.sqrt(var) * self._z_sd

    def interval(self, X: np.ndarray, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, lower, upper) of the objective at ``X`` in objective units: the
        ``mu +- k sigma`` interval of the warped scores mapped back through the warp, sigma
        scaled by ``calibration`` (leave-one-out and held-out random draws, ``fit``). The
        acquisition uses ``predict``
        unscaled: with the scaled sigma it explored more and found less (NAS-Bench-201
        HV@100 median 0.962 vs 0.969 over 10 seeds, within their spread)."""
        assert self.warp is not None
        mu, sd = self.predict(X)
        sd = sd * self.calibration
        w = self.warp
        return w.inverse(mu), w.inverse(mu - k * sd), w.inverse(mu + k * sd)
