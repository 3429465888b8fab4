"""Figures of the demonstrations (paper Figs. 2-4) and of training; the only matplotlib user.

Figures are built with the object-oriented `matplotlib.figure.Figure` and rendered by the Agg
canvas, never through `pyplot`: nothing needs a display, no global backend is switched, and no
figure outlives its function. Each function writes one PNG atomically and returns its path.
"""

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from jaxtyping import Float
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.spatial.distance import cdist

from langevin_uq._atomic import atomic_path
from langevin_uq._types import Array
from langevin_uq.errors import DataError

__all__ = [
    "plot_convergence",
    "plot_density_over_time",
    "plot_distance_correlations",
    "plot_history",
    "plot_mixture_summaries",
    "plot_predictive_bands",
    "plot_w1_over_time",
    "plot_weight_law",
]

HostArray = np.ndarray | Array


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return Path(path)


def _array(name: str, x: HostArray, ndim: int, last: int | None = None) -> np.ndarray:
    """A non-empty float array of rank `ndim` (and last dimension `last`), or a `DataError`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != ndim or x.size == 0 or (last is not None and x.shape[-1] != last):
        want = f"{ndim}-d" if last is None else f"{ndim}-d (..., {last})"
        raise DataError(f"{name} must be a non-empty {want} array, got shape {x.shape}.")
    return x


def _padded_range(lo: float, hi: float, frac: float = 0.05) -> tuple[float, float]:
    """Widen [lo, hi] by `frac` of its span; a zero span gets a width from its magnitude."""
    span = hi - lo if hi > lo else max(abs(lo), 1.0) * 0.2
    return lo - frac * span, hi + frac * span


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


def plot_density_over_time(
    t: Float[HostArray, " T"],
    panels: Mapping[str, Float[HostArray, "n T"]],
    path: str | os.PathLike,
    *,
    output_label: str = "y",
    n_trajectories: int = 5,
    grid_size: int = 200,
) -> Path:
    """Image of the density of an output over time, one panel per source (Fig. 2).

    Parameters
    ----------
    t : array of shape (T,)
        Observation times.
    panels : dict of str to array of shape (n_i, T)
        Trajectories of one scalar output per source, e.g. ``{"data": ..., "Langevin sampler":
        ...}``. All panels share the y-grid and the colour scale.
    path : path-like
        Where to write the PNG.
    output_label : str
        The y-axis label.
    n_trajectories : int
        How many individual trajectories of each source to overlay.
    grid_size : int
        Number of y-grid points of the density image.

    Returns
    -------
    Path
        `path`.
    """
    t = _array("t", t, 1)
    if not panels:
        raise DataError("plot_density_over_time needs at least one panel.")
    arrays = {name: _array(f"panels[{name!r}]", y, 2, t.size) for name, y in panels.items()}
    lo = min(float(np.nanmin(y)) for y in arrays.values())
    hi = max(float(np.nanmax(y)) for y in arrays.values())
    grid = np.linspace(*_padded_range(lo, hi), grid_size)
    dens = {name: _kde_columns(y, grid, floor=grid[1] - grid[0]) for name, y in arrays.items()}
    # Clip the colour scale below the peaks of (near-)degenerate columns, which would swamp it.
    vmax = max(float(np.quantile(d, 0.995)) for d in dens.values())
    vmax = vmax if vmax > 0 else 1.0

    fig = _new_figure(4.0 * len(arrays) + 1.0, 3.6)
    axes = fig.subplots(1, len(arrays), sharey=True, squeeze=False)[0]
    mesh = None
    for ax, (name, y) in zip(axes, arrays.items(), strict=True):
        mesh = ax.pcolormesh(
            t, grid, dens[name].T, shading="nearest", cmap="viridis", vmin=0.0, vmax=vmax
        )
        ax.plot(t, y[:n_trajectories].T, color="white", lw=0.6, alpha=0.7)
        ax.set(title=name, xlabel="t", ylim=(grid[0], grid[-1]))
    axes[0].set_ylabel(output_label)
    fig.colorbar(mesh, ax=list(axes), extend="max", label="density")
    return _save(fig, path)


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


def _log_span(values: np.ndarray) -> float:
    """Ratio of the largest to the smallest positive finite value (1 if there are none)."""
    positive = values[np.isfinite(values) & (values > 0)]
    return float(positive.max() / positive.min()) if positive.size else 1.0


def plot_w1_over_time(
    t: Float[HostArray, " T"],
    curves: Mapping[str, Float[HostArray, " T"]],
    path: str | os.PathLike,
    *,
    ylabel: str = "W1",
) -> Path:
    """W1(t) between predicted and data distributions, one line per method or epoch (Fig. 4).

    Parameters
    ----------
    t : array of shape (T,)
        Observation times.
    curves : dict of str to array of shape (T,)
        E.g. ``{"epoch 100": w1[:, 0], ...}`` from `langevin_uq.metrics.w1_over_time`.
    path : path-like
        Where to write the PNG.
    ylabel : str
        The y-axis label.

    Returns
    -------
    Path
        `path`. The y-axis is logarithmic when the positive values span more than two decades.
    """
    t = _array("t", t, 1)
    arrays = {name: _array(f"curves[{name!r}]", c, 1, t.size) for name, c in curves.items()}
    fig = _new_figure(6.0, 4.0)
    ax = fig.subplots()
    many = len(arrays) > 10  # e.g. one curve per epoch: a sequential colour map reads better
    for i, (name, c) in enumerate(arrays.items()):
        color = colormaps["viridis"](i / max(len(arrays) - 1, 1)) if many else f"C{i}"
        ax.plot(t, c, color=color, label=name)
    if arrays and _log_span(np.concatenate(list(arrays.values()))) > 100:
        ax.set_yscale("log", nonpositive="mask")
    ax.set(xlabel="t", ylabel=ylabel)
    if arrays:
        ax.legend(fontsize="small", ncols=2 if many else 1)
    return _save(fig, path)


def plot_history(history: Mapping[str, Float[HostArray, " E"]], path: str | os.PathLike) -> Path:
    """Training curves: each term (``loss``, ``nll``, ``kl``, then any others) on its own axis.

    Parameters
    ----------
    history : dict of str to array of shape (E,)
        Per-epoch values; ``epoch`` (if present) is the x-axis.
    path : path-like
        Where to write the PNG.

    Returns
    -------
    Path
        `path`. A term that changes sign gets a symlog axis; a positive one spanning more than
        two decades a log axis.
    """
    arrays = {key: _array(f"history[{key!r}]", v, 1) for key, v in history.items()}
    x = arrays.pop("epoch", None)
    terms = [k for k in ("loss", "nll", "kl") if k in arrays]
    terms += [k for k in arrays if k not in terms]
    if not terms:
        raise DataError("history holds no term to plot besides 'epoch'.")
    if x is None:
        x = np.arange(arrays[terms[0]].size, dtype=float)
    fig = _new_figure(6.0, 2.2 * len(terms) + 0.4)
    axes = fig.subplots(len(terms), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, terms, strict=True):
        values = arrays[key]
        if values.size != x.size:
            raise DataError(f"history[{key!r}] has {values.size} values for {x.size} epochs.")
        ax.plot(x, values, lw=1.0)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() < 0 < finite.max():
            nonzero = np.abs(finite[finite != 0])
            ax.set_yscale("symlog", linthresh=float(np.quantile(nonzero, 0.1)))
        elif finite.size and finite.min() > 0 and _log_span(finite) > 100:
            ax.set_yscale("log")
        ax.set_ylabel(key)
    axes[-1].set_xlabel("epoch")
    return _save(fig, path)


def plot_predictive_bands(
    t: Float[HostArray, " T"],
    y_obs: Float[HostArray, "N T"],
    y_pred: Float[HostArray, "M T"],
    path: str | os.PathLike,
    *,
    output_label: str = "y",
    max_observed: int = 20,
) -> Path:
    """Central 90 % and 50 % predictive bands and the median, over observed trajectories.

    Parameters
    ----------
    t : array of shape (T,)
        Observation times.
    y_obs : array of shape (N, T)
        Observed trajectories of one output; at most `max_observed` are drawn.
    y_pred : array of shape (M, T)
        Predictive draws of the same output.
    path : path-like
        Where to write the PNG.
    output_label : str
        The y-axis label.
    max_observed : int
        Number of observed trajectories to overlay.

    Returns
    -------
    Path
        `path`.
    """
    t = _array("t", t, 1)
    y_obs = _array("y_obs", y_obs, 2, t.size)
    y_pred = _array("y_pred", y_pred, 2, t.size)
    q05, q25, q50, q75, q95 = np.quantile(y_pred, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    fig = _new_figure(6.0, 4.0)
    ax = fig.subplots()
    ax.fill_between(t, q05, q95, color="C0", alpha=0.2, lw=0, label="5-95 %")
    ax.fill_between(t, q25, q75, color="C0", alpha=0.4, lw=0, label="25-75 %")
    ax.plot(t, q50, color="C0", lw=1.5, label="median")
    observed = ax.plot(t, y_obs[:max_observed].T, color="black", lw=0.6, alpha=0.5)
    if observed:
        observed[0].set_label("observed")
    ax.set(xlabel="t", ylabel=output_label)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_pit_histogram(
    pit: Float[HostArray, " n"], path: str | os.PathLike, *, bins: int = 10
) -> Path:
    """Histogram of PIT values (`langevin_uq.metrics.pit_pooled`) against the uniform density.

    Parameters
    ----------
    pit : array of shape (n,)
        PIT values in [0, 1].
    path : path-like
        Where to write the PNG.
    bins : int
        Number of equal bins on [0, 1].

    Returns
    -------
    Path
        `path`.
    """
    pit = _array("pit", np.ravel(pit), 1)
    fig = _new_figure(5.0, 3.5)
    ax = fig.subplots()
    ax.hist(pit, bins=bins, range=(0.0, 1.0), density=True, color="C0", alpha=0.7)
    ax.axhline(1.0, color="black", lw=1, ls="--", label="calibrated")
    ax.set(xlabel="PIT of held-out values", ylabel="density", xlim=(0, 1))
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_mixture_summaries(
    values: Mapping[str, Float[HostArray, "n K"]],
    times: Float[HostArray, " K"],
    summaries: Mapping[str, list[Mapping[str, np.ndarray]]],
    path: str | os.PathLike,
    *,
    output_label: str = "y",
    bins: int = 40,
) -> Path:
    """Histograms at a few times with their Gaussian-mixture summaries (the paper's Fig. 5).

    Parameters
    ----------
    values : dict of str to array of shape (n_i, K)
        One scalar output per source (data, each method) at the K chosen times.
    times : array of shape (K,)
        The chosen times, for the panel titles.
    summaries : dict of str to list of K dicts
        Per source and time, `langevin_uq.metrics.mixture_summary` (``weight``, ``mean``,
        ``sd``); drawn as the mixture's density over the histogram.
    path : path-like
        Where to write the PNG.
    output_label : str
        The x-axis label.
    bins : int
        Histogram bins, shared by all sources at one time.

    Returns
    -------
    Path
        `path`.
    """
    times = _array("times", times, 1)
    arrays = {name: _array(f"values[{name!r}]", v, 2, times.size) for name, v in values.items()}
    if not arrays:
        raise DataError("plot_mixture_summaries needs at least one source.")
    fig = _new_figure(3.2 * times.size, 3.0)
    axes = fig.subplots(1, times.size, squeeze=False)[0]
    for k, ax in enumerate(axes):
        lo = min(float(v[:, k].min()) for v in arrays.values())
        hi = max(float(v[:, k].max()) for v in arrays.values())
        edges = np.linspace(*_padded_range(lo, hi), bins + 1)
        grid = np.linspace(edges[0], edges[-1], 400)
        for i, (name, v) in enumerate(arrays.items()):
            ax.hist(v[:, k], bins=edges, density=True, color=f"C{i}", alpha=0.3, label=name)
            gm = summaries.get(name)
            if gm is not None:
                w, mu, sd = (np.asarray(gm[k][key]) for key in ("weight", "mean", "sd"))
                sd = np.maximum(sd, 1e-12)
                z = (grid[:, None] - mu) / sd
                dens = np.sum(w * np.exp(-0.5 * z**2) / (sd * np.sqrt(2 * np.pi)), axis=1)
                ax.plot(grid, dens, color=f"C{i}", lw=1.2)
        ax.set(title=f"t = {times[k]:.3g}", xlabel=output_label)
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize="small")
    return _save(fig, path)


def plot_convergence(
    table: Float[HostArray, "A B"],
    rows: list[int],
    columns: list[int],
    path: str | os.PathLike,
    *,
    row_label: str = "replicas R",
    column_label: str = "pseudo-time steps",
    value_label: str = "W1",
) -> Path:
    """A heat map of a metric over two sampler sizes, values printed in the cells (Fig. 6).

    Parameters
    ----------
    table : array of shape (A, B)
        The metric for each row and column setting (NaN for a cell not run).
    rows, columns : list of int
        The settings along each axis, e.g. replicas and Euler-Maruyama steps.
    path : path-like
        Where to write the PNG.
    row_label, column_label, value_label : str
        Axis and colour-bar labels.

    Returns
    -------
    Path
        `path`.
    """
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (len(rows), len(columns)) or table.size == 0:
        raise DataError(f"table of shape {table.shape} must be ({len(rows)}, {len(columns)}).")
    fig = _new_figure(1.2 * len(columns) + 2.5, 0.7 * len(rows) + 1.5)
    ax = fig.subplots()
    mesh = ax.imshow(table, cmap="viridis_r", aspect="auto", origin="lower")
    finite = table[np.isfinite(table)]
    middle = float(np.median(finite)) if finite.size else 0.0
    for (i, j), value in np.ndenumerate(table):
        if np.isfinite(value):
            color = "white" if value > middle else "black"
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(len(columns)), [str(c) for c in columns])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set(xlabel=column_label, ylabel=row_label)
    fig.colorbar(mesh, ax=ax, label=value_label)
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
