"""Bayesian matrix factorisation by Gibbs sampling (BPMF, Salakhutdinov & Mnih 2008), for explicit ratings.

Users' and items' factors get Gaussian priors whose means and precisions get Normal-Wishart hyper-priors; the
sampler alternates between hyper-parameters and factors, and the prediction is the average of the samples after
``burn_in`` (a Monte Carlo estimate of the posterior mean rating). Averaging over the posterior instead of taking
one regularised point estimate is what makes it beat SGD-trained MF on small data sets without tuning a
regularisation weight. It is not a gradient model, so it does not go through the engine: a sweep is a closed-form
draw, and the samples' running sum is the whole state.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import stats

log = logging.getLogger(__name__)


class BayesianMF:
    def __init__(
        self, n_users: int, n_items: int, *, dim: int = 10, alpha: float = 2.0, sweeps: int = 200, burn_in: int = 20,
        seed: int = 0,
    ) -> None:  # fmt: skip
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.alpha, self.sweeps, self.burn_in = alpha, sweeps, burn_in  # alpha: the rating noise precision
        self.rng = np.random.default_rng(seed)
        self.mean = 0.0
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []

    def _hyper(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A draw of (mu, Lambda) from the Normal-Wishart posterior given factor rows ``x``."""
        n, d = x.shape
        beta0, nu0 = 2.0, d
        xbar = x.mean(axis=0)
        s = np.cov(x, rowvar=False, bias=True)
        beta_n, nu_n = beta0 + n, nu0 + n
        mu_n = n * xbar / beta_n  # prior mean mu0 = 0
        w_inv = np.eye(d) + n * s + beta0 * n / beta_n * np.outer(xbar, xbar)
        w_n = np.linalg.inv(w_inv)
        w_n = (w_n + w_n.T) / 2
        lam = stats.wishart.rvs(df=nu_n, scale=w_n, random_state=self.rng)
        mu = self.rng.multivariate_normal(mu_n, np.linalg.inv(beta_n * lam))
        return mu, lam

    def _draw(self, other: np.ndarray, keys: np.ndarray, idx: np.ndarray, r: np.ndarray, n: int,
              mu: np.ndarray, lam: np.ndarray) -> np.ndarray:  # fmt: skip
        """Every row's factors at once: batched precision matrices, Cholesky factors and solves."""
        d = self.dim
        v = other[idx]
        outer = (v[:, :, None] * v[:, None, :]).reshape(len(v), d * d)
        gram = np.stack([np.bincount(keys, weights=outer[:, k], minlength=n) for k in range(d * d)], axis=1)
        rhs = np.stack([np.bincount(keys, weights=v[:, k] * r, minlength=n) for k in range(d)], axis=1)
        prec = lam[None] + self.alpha * gram.reshape(n, d, d)
        mean = np.linalg.solve(prec, ((lam @ mu)[None, :] + self.alpha * rhs)[..., None])[..., 0]
        chol = np.linalg.cholesky(prec)
        # x = mean + L^-T z has covariance prec^-1
        z = self.rng.standard_normal((n, d, 1))
        return mean + np.linalg.solve(np.transpose(chol, (0, 2, 1)), z)[..., 0]

    def fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> BayesianMF:
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        self.mean = float(np.mean(ratings))
        r = np.asarray(ratings, np.float64) - self.mean
        u = self.rng.normal(0, 0.1, (self.n_users, self.dim))
        v = self.rng.normal(0, 0.1, (self.n_items, self.dim))
        self.samples = []
        self._sum_u, self._sum_v = np.zeros_like(u), np.zeros_like(v)
        for sweep in range(self.sweeps):
            v = self._draw(u, items, users, r, self.n_items, *self._hyper(v))
            u = self._draw(v, users, items, r, self.n_users, *self._hyper(u))
            if sweep >= self.burn_in:
                self.samples.append((u.astype(np.float32), v.astype(np.float32)))
            if (sweep + 1) % 50 == 0:
                log.info("BPMF sweep %d / %d", sweep + 1, self.sweeps)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray, *, clip: tuple[float, float] = (1.0, 5.0)) -> np.ndarray:
        """Posterior mean rating: the average over the kept samples."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        total = np.zeros(len(users))
        for u, v in self.samples:
            total += np.einsum("nd,nd->n", u[users], v[items])
        pred = self.mean + total / max(len(self.samples), 1)
        return np.clip(pred, *clip)
