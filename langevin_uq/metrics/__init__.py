"""Evaluation metrics on the host (NumPy/SciPy): METHOD.md section 10.

These compare predicted and observed trajectories, and sampled weights against analytic laws, after
training; they are not losses and are never traced by JAX. Inputs may be NumPy or JAX arrays and
are converted with `numpy.asarray`.
"""

from ._arrays import HostArray as HostArray
from .calibration import coverage, coverage_pooled, pit_pooled
from .dependence import distance_correlation, distance_correlation_matrix
from .modes import mixture_summary, mode_fractions, nearest_mode
from .parameters import format_parameter_table, parameter_table, weight_statistics
from .scores import crps_ensemble, energy_score
from .wasserstein import w1_over_time, wasserstein1

__all__ = [
    "coverage",
    "coverage_pooled",
    "crps_ensemble",
    "distance_correlation",
    "distance_correlation_matrix",
    "energy_score",
    "format_parameter_table",
    "mixture_summary",
    "mode_fractions",
    "nearest_mode",
    "parameter_table",
    "pit_pooled",
    "w1_over_time",
    "wasserstein1",
    "weight_statistics",
]
