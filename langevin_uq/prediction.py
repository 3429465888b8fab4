"""Predictive ensembles for new inputs and their summary file (INTERFACE.md "Predictions")."""

from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr

from . import rundir
from ._atomic import atomic_path
from ._types import Float
from .data import Trajectories
from .errors import ConfigError, DataError
from .run import FittedRun, load_run, predict, sample_weights
from .seeding import stream

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def run_samples(run: FittedRun, run_dir: Path, n: int | None, seed: int) -> jnp.ndarray:
    """Posterior samples of a run: ``n`` fresh ones, or the run's ``samples.npz``."""
    if n is not None:
        return sample_weights(run, n, stream(seed, "sample"))
    w = rundir.read_samples(Path(run_dir), run.partition.n_weights)
    return jnp.asarray(w, run.w_mle.dtype)


def ensemble_dataset(
    y_samples: Float[np.ndarray, "M N T ny"], t: Float[np.ndarray, "N T"]
) -> xr.Dataset:
    """The prediction file's variables: ensemble, mean, std, quantiles and times."""
    dims = ("trajectory", "time", "output")
    shared = bool(np.all(t == t[:1]))
    q = np.quantile(y_samples, QUANTILES, axis=0)
    return xr.Dataset(
        {
            "y_samples": (("sample", *dims), y_samples),
            "mean": (dims, y_samples.mean(axis=0)),
            "std": (
                dims,
                y_samples.std(axis=0, ddof=1)
                if len(y_samples) > 1
                else np.zeros(y_samples.shape[1:]),
            ),
            "quantiles": (("q", *dims), q),
            "t": (("time",), t[0]) if shared else (("trajectory", "time"), t),
        },
        coords={"q": np.asarray(QUANTILES)},
    )


def observation_noise(
    run: FittedRun, meta: dict, w: Float[np.ndarray, "M nw"], shape, key
) -> Float[np.ndarray, "M N T ny"]:
    """Gaussian observation noise for an ensemble of ``shape`` ``(M, N, T, ny)``, in the
    data's units: each sample's own ``exp(log_sigma)`` with a learned noise, else the run's
    ``sigma``. Refused for the other likelihoods (their noise is not one Gaussian)."""
    log_sigma = run.partition.log_sigma(np.asarray(w))
    if log_sigma is not None:
        sigma = np.exp(np.asarray(log_sigma))[:, None, None, :]
    elif meta.get("likelihood", {}).get("kind") == "GaussianLikelihood":
        sigma = np.asarray(meta["likelihood"]["sigma"])
    else:
        raise ConfigError(
            f"--noise adds the gaussian likelihood's noise; this run's likelihood is "
            f"{run.config.likelihood.kind}"
        )
    return sigma * np.asarray(jr.normal(key, shape), np.float64)


def predict_to_file(
    run_dir: str | Path, data: Trajectories, out: str | Path, *, n: int | None, seed: int = 0,
    noise: bool = False,
) -> int:  # fmt: skip
    """Predict for every trajectory of ``data`` and write the ensemble file atomically.

    ``noise``: add the observation noise (`observation_noise`) to every member, for a
    predictive of new observations rather than of the noise-free outputs.

    Returns the ensemble size M.
    """
    run = load_run(run_dir)
    meta = rundir.read_metadata(Path(run_dir))
    if data.n_inputs != meta["n_inputs"] or data.n_outputs != meta["n_outputs"]:
        raise DataError(
            f"the data have {data.n_inputs} inputs and {data.n_outputs} outputs but the run was "
            f"fitted to {meta['n_inputs']} and {meta['n_outputs']}"
        )
    w = run_samples(run, Path(run_dir), n, seed)
    y = predict(run, data, w)
    if noise:
        y = y + observation_noise(run, meta, w, y.shape, stream(seed, "predict/noise"))
    ds = ensemble_dataset(y, data.t)
    with atomic_path(out) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return int(y.shape[0])
