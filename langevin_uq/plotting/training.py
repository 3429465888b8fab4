"""How a fit converges: training curves, and a metric over two sampler sizes (Fig. 6)."""

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._figure import HostArray, _array, _log_span, _new_figure, _save


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
