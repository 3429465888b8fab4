"""Gaussian kernel density estimates for the density plots, with floored bandwidths."""

import numpy as np
from scipy.spatial.distance import cdist


def _kde_columns(samples: np.ndarray, grid: np.ndarray, floor: float) -> np.ndarray:
    """Gaussian KDE of each column of `samples` (n, T) on `grid` (G,): returns (T, G).

    Scott's bandwidth sd * n^(-1/5), as in `scipy.stats.gaussian_kde`, but never below `floor`
    so that a constant column (a fixed initial condition) becomes a narrow bump, not a crash.
    """
    n, n_cols = samples.shape
    sd = samples.std(axis=0, ddof=1) if n > 1 else np.zeros(n_cols)
    h = np.maximum(sd * n ** (-0.2), floor)
    out = np.empty((n_cols, grid.size))
    chunk = max(1, 4_000_000 // (n * grid.size))  # bound the (chunk, G, n) kernel array
    for start in range(0, n_cols, chunk):
        cols = slice(start, start + chunk)
        z = (grid[None, :, None] - samples.T[cols, None, :]) / h[cols, None, None]
        out[cols] = np.exp(-0.5 * z**2).sum(-1) / (n * h[cols, None] * np.sqrt(2 * np.pi))
    return out


def _kde_2d(x: np.ndarray, points: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Gaussian KDE of samples `x` (M, 2) at `points` (K, 2), Scott's bandwidth, floored."""
    m = x.shape[0]
    cov = (np.cov(x, rowvar=False) if m > 1 else np.zeros((2, 2))) * m ** (-1 / 3)
    chol = np.linalg.cholesky(cov + np.diag(floor**2))
    whiten = np.linalg.inv(chol).T
    xw, pw = x @ whiten, points @ whiten
    norm = m * 2 * np.pi * np.prod(np.diag(chol))
    out = np.empty(points.shape[0])
    step = max(1, 4_000_000 // m)
    for start in range(0, points.shape[0], step):
        sq = cdist(pw[start : start + step], xw, "sqeuclidean")
        out[start : start + step] = np.exp(-0.5 * sq).sum(-1) / norm
    return out
