"""langevin-uq: uncertainty quantification of neural-ODE models by Langevin sampling.

The public API: load data, configure, fit, sample weights, predict.

    data = load_trajectories("data.nc")
    run = fit(data, Config.load("run.toml"), run_dir="runs/a")
    w = sample_weights(run, 4000, jax.random.key(0))
    y = predict(run, data, w)

Your own data model is any Equinox module with ``vector_field(t, h, x)`` (`solve` integrates
it): ``fit(data, config, model=my_module, run_dir=...)``.
"""

__version__ = "0.1.0"

from .config import Config
from .data import (
    Scaler,
    Trajectories,
    from_arrays,
    load_trajectories,
    save_trajectories,
)
from .datamodel import solve
from .errors import (
    ConfigError,
    DataError,
    LangevinUQError,
    RunDirError,
    SupportWarning,
    TrainingDivergedError,
    TrainingInterrupted,
)
from .run import FittedRun, fit, load_run, predict, sample_weights

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "FittedRun",
    "LangevinUQError",
    "RunDirError",
    "Scaler",
    "SupportWarning",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "Trajectories",
    "fit",
    "from_arrays",
    "load_run",
    "load_trajectories",
    "predict",
    "sample_weights",
    "save_trajectories",
    "solve",
]
