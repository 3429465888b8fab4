"""Laws of sampled weights: two weights against a reference law (Fig. 3), and the distance
correlations of weight pairs (Fig. 7, 14)."""

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._figure import HostArray, _array, _new_figure, _padded_range, _save
from ._kde import _kde_2d, _kde_columns


def _hdr_levels(density: np.ndarray, masses: tuple[float, ...] = (0.9, 0.5)) -> np.ndarray:
    """Density thresholds whose super-level sets hold `masses` of the gridded mass, increasing."""
    flat = np.sort(density.ravel())[::-1]
    cum = np.cumsum(flat) / max(flat.sum(), np.finfo(float).tiny)
    levels = [flat[min(np.searchsorted(cum, q), flat.size - 1)] for q in masses]
    return np.unique([lv for lv in levels if lv > 0])


def _principal_axis(cov: np.ndarray) -> np.ndarray:
    """Unit eigenvector of the largest eigenvalue of a 2x2 covariance."""
    return np.linalg.eigh(cov)[1][:, -1]


def plot_weight_law(
    samples: Mapping[str, Float[HostArray, "M 2"]],
    path: str | os.PathLike,
    *,
    reference_log_density: Callable[[np.ndarray], HostArray] | None = None,
    reference_mean: Float[HostArray, "2"] | None = None,
    names: tuple[str, str] = ("w1", "w2"),
    grid_size: int = 100,
) -> Path:
    """Marginal and joint laws of two weights per method against a reference law (Fig. 3).

    Corner layout: marginal KDEs of the first weight (top left) and the second (bottom right);
    joint KDE contours, enclosing 50 % and 90 % of the mass, with each method's mean (large
    circle) and first principal direction through it (bottom left); a scatter of the draws over
    the reference contours (top right). The reference is drawn in black.

    Parameters
    ----------
    samples : dict of str to array of shape (M, 2)
        Weight draws of each method.
    path : path-like
        Where to write the PNG.
    reference_log_density : callable, optional
        Maps points (K, 2) to the normalised log density (K,) of the reference law, e.g. the
        analytic OU law of METHOD.md section 11; its marginals are integrated on the plot grid.
    reference_mean : array of shape (2,), optional
        Mean of the reference law, marked with a black circle.
    names : pair of str
        Axis labels.
    grid_size : int
        Grid points per axis for the densities.

    Returns
    -------
    Path
        `path`.
    """
    if not samples:
        raise DataError("plot_weight_law needs at least one method's samples.")
    draws = {name: _array(f"samples[{name!r}]", x, 2, 2) for name, x in samples.items()}
    ref_mean = None if reference_mean is None else np.asarray(reference_mean, float).reshape(2)
    pooled = np.concatenate([np.quantile(x, [0.005, 0.995], axis=0) for x in draws.values()])
    if ref_mean is not None:
        pooled = np.concatenate([pooled, ref_mean[None]])
    grids = [
        np.linspace(*_padded_range(pooled[:, i].min(), pooled[:, i].max(), 0.15), grid_size)
        for i in range(2)
    ]
    steps = np.array([g[1] - g[0] for g in grids])
    g1, g2 = np.meshgrid(*grids, indexing="ij")
    points = np.stack([g1.ravel(), g2.ravel()], axis=-1)

    fig = _new_figure(8.0, 7.0)
    axes = fig.subplots(2, 2)
    ax_m1, ax_scatter, ax_joint, ax_m2 = axes.ravel()
    ref_style = {"colors": "black", "linewidths": 1.2}
    if reference_log_density is not None:
        logp = np.asarray(reference_log_density(points), dtype=np.float64).reshape(g1.shape)
        ref = np.nan_to_num(np.exp(logp), nan=0.0, posinf=0.0)
        ax_m1.plot(grids[0], np.trapezoid(ref, grids[1], axis=1), "k-", lw=1.5, label="analytic")
        ax_m2.plot(grids[1], np.trapezoid(ref, grids[0], axis=0), "k-", lw=1.5)
        levels = _hdr_levels(ref)
        if levels.size:
            ax_joint.contour(g1, g2, ref, levels=levels, **ref_style)
            ax_scatter.contour(g1, g2, ref, levels=levels, **ref_style)
        mass = ref.sum()
        if mass > 0:
            mean = (points * ref.reshape(-1, 1)).sum(0) / mass
            centred = points - mean
            cov = (centred.T * ref.ravel()) @ centred / mass
            ax_joint.axline(mean, mean + _principal_axis(cov), color="black", lw=1.0, ls="--")
    if ref_mean is not None:
        ax_joint.plot(*ref_mean, "o", ms=14, mfc="none", mec="black", mew=2, zorder=5)

    for i, (name, x) in enumerate(draws.items()):
        color = f"C{i % 10}"
        for k, ax in ((0, ax_m1), (1, ax_m2)):
            ax.plot(grids[k], _kde_columns(x[:, [k]], grids[k], steps[k])[0], color=color)
        ax_m1.lines[-1].set_label(name)
        dens = _kde_2d(x, points, steps).reshape(g1.shape)
        levels = _hdr_levels(dens)
        if levels.size:
            ax_joint.contour(g1, g2, dens, levels=levels, colors=color, linewidths=1.0)
        mean = x.mean(axis=0)
        ax_joint.plot(*mean, "o", ms=12, color=color, alpha=0.6, zorder=4)
        if x.shape[0] > 1:
            axis = _principal_axis(np.cov(x, rowvar=False))
            ax_joint.axline(mean, mean + axis, color=color, lw=1.0)
        shown = x[:: max(1, x.shape[0] // 500)]
        ax_scatter.plot(shown[:, 0], shown[:, 1], ".", ms=2, color=color, alpha=0.4)

    ax_m1.set(xlabel=names[0], ylabel="density", xlim=(grids[0][0], grids[0][-1]))
    ax_m2.set(xlabel=names[1], ylabel="density", xlim=(grids[1][0], grids[1][-1]))
    for ax in (ax_joint, ax_scatter):
        ax.set(xlabel=names[0], ylabel=names[1], xlim=grids[0][[0, -1]], ylim=grids[1][[0, -1]])
    ax_m1.legend(fontsize="small")
    return _save(fig, path)


def plot_distance_correlations(
    values: Mapping[str, Float[HostArray, " P"]], path: str | os.PathLike, *, bins: int = 50
) -> Path:
    """Histogram of pairwise distance correlations between sampled weights (Fig. 7, 14).

    Parameters
    ----------
    values : dict of str to array of shape (P,)
        Per method, the distance correlations of the weight pairs (the upper triangle of
        `langevin_uq.metrics.distance_correlation_matrix`); the median is marked.
    path : path-like
        Where to write the PNG.
    bins : int
        Histogram bins on [0, x], x the largest value plus 10 % (at least 0.2, at most 1).

    Returns
    -------
    Path
        `path`.
    """
    arrays = {name: _array(f"values[{name!r}]", v, 1) for name, v in values.items()}
    fig = _new_figure(5.5, 3.6)
    ax = fig.subplots()
    # Distance correlations of many weight pairs crowd near 0: bin up to the largest one only.
    top = max((float(v.max()) for v in arrays.values()), default=1.0)
    edges = np.linspace(0.0, min(1.0, max(0.2, 1.1 * top)), bins + 1)
    for i, (name, v) in enumerate(arrays.items()):
        median = float(np.median(v))
        ax.hist(v, bins=edges, density=True, color=f"C{i}", alpha=0.45,
                label=f"{name} (median {median:.3f})")  # fmt: skip
        ax.axvline(median, color=f"C{i}", lw=1.2, ls="--")
    ax.set(xlabel="distance correlation of a weight pair", ylabel="density",
           xlim=(0, edges[-1]))  # fmt: skip
    if arrays:
        ax.legend(fontsize="small")
    return _save(fig, path)
