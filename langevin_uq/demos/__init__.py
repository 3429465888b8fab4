"""End-to-end demonstrations (METHOD section 11): simulate, fit each likelihood, report.

One module per demonstration (`langevin_uq.demos.ou`, `langevin_uq.demos.schlogl`), the helpers
they share in ``_common``. The command line finds a demonstration through
`langevin_uq.registry`; its public names are re-exported here.
"""

from .ou import OU_BASELINES, OU_LIKELIHOODS, drift_score_cosine, ou_config, run_ou_demo
from .schlogl import (
    SCHLOGL_GRID,
    SCHLOGL_QUICK_GRID,
    final_time_modes,
    run_schlogl_demo,
    schlogl_config,
)

__all__ = [
    "OU_BASELINES",
    "OU_LIKELIHOODS",
    "SCHLOGL_GRID",
    "SCHLOGL_QUICK_GRID",
    "drift_score_cosine",
    "final_time_modes",
    "ou_config",
    "run_ou_demo",
    "run_schlogl_demo",
    "schlogl_config",
]
