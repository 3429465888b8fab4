"""Trajectory data: load, validate, save, group, split and scale (METHOD.md section 1).

Everything here runs on the host with plain NumPy arrays. Every malformed input is refused at this
edge with a `DataError` whose message is one sentence naming the variable, the problem and the file,
so that the model code downstream can assume well-formed data. `from_arrays` holds the one set of
checks; `load_trajectories` only reads the variables and hands them to it.
"""

from .files import load_trajectories, save_trajectories
from .scaling import Scaler
from .splitting import groups, split
from .trajectories import Trajectories, from_arrays

__all__ = [
    "Scaler",
    "Trajectories",
    "from_arrays",
    "groups",
    "load_trajectories",
    "save_trajectories",
    "split",
]
