"""Predictive distributions over time against the data (Figs. 2, 4, 5), bands and the PIT."""

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from jaxtyping import Float
from matplotlib import colormaps

from langevin_uq.errors import DataError

from ._figure import HostArray, _array, _log_span, _new_figure, _padded_range, _save
from ._kde import _kde_columns


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
    # The range holds 99.6 % of each source's values: a few far-out draws would squash the
    # image into a line (measured: one MF-BBVI draw at X = 5000 against modes at 90 and 550).
    lo = min(float(np.nanquantile(y, 0.002)) for y in arrays.values())
    hi = max(float(np.nanquantile(y, 0.998)) for y in arrays.values())
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
