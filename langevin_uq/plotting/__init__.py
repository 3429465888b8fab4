"""Figures of the demonstrations (paper Figs. 2-4) and of training; the only matplotlib user.

Figures are built with the object-oriented `matplotlib.figure.Figure` and rendered by the Agg
canvas, never through `pyplot`: nothing needs a display, no global backend is switched, and no
figure outlives its function. Each function writes one PNG atomically and returns its path.
"""

from ._figure import HostArray as HostArray
from .predictive import (
    plot_density_over_time,
    plot_mixture_summaries,
    plot_pit_histogram,
    plot_predictive_bands,
    plot_w1_over_time,
)
from .training import plot_convergence, plot_history
from .weight_laws import plot_distance_correlations, plot_weight_law

__all__ = [
    "plot_convergence",
    "plot_density_over_time",
    "plot_distance_correlations",
    "plot_history",
    "plot_mixture_summaries",
    "plot_pit_histogram",
    "plot_predictive_bands",
    "plot_w1_over_time",
    "plot_weight_law",
]
