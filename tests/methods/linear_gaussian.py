"""A linear-Gaussian problem whose posterior is known exactly, for BBVI and NUTS.

The data model's observation is linear in its own weights (``y = a h(t) + c`` with the hidden
state ``h`` fixed at the MLE: ``bll-fixed`` on ``Z`` with no hidden layer), the prior is
Gaussian and the likelihood Gaussian with a known sigma, so the posterior of ``(a, c)`` is
Gaussian with precision ``I / s^2 + sum_i J^T J / sigma^2``.
"""

import jax
import jax.random as jr
import numpy as np

from langevin_uq.problem import group_inputs, predict_groups
from langevin_uq.systems.ou import OUSystem, simulate_ou

SIGMA = 0.1
LINEAR_GAUSSIAN = {
    "data": {"validation_fraction": 0.0},
    "model": {"hidden_state": 1, "observation": "mlp", "R_hidden": [], "Z_hidden": []},
    "partition": {"variant": "bll-fixed", "submodels": ["Z"]},
    "likelihood": {"kind": "gaussian", "sigma": SIGMA},
    "train": {"epochs": 600, "mle_epochs": 500},
}


def noisy_ou():
    """16 OU trajectories on 8 times with observation noise of sd `SIGMA`."""
    return simulate_ou(OUSystem(n=16, n_times=8), jr.key(0), noise_sd=SIGMA)


def exact_posterior(run, data) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``w_S`` given ``data`` for the linear-Gaussian run.

    The law every method targets: prior times ``exp(-loss / beta)`` with the run's
    ``train.beta``.
    """
    inputs = group_inputs(data)
    w_s0, w_d = run.partition.split(run.w_mle)

    def predict(w_s):
        return predict_groups(run.partition, run.partition.join(w_s, w_d), inputs)[0].ravel()

    jac = np.asarray(jax.jacfwd(predict)(w_s0), np.float64)
    offset = np.asarray(predict(w_s0), np.float64) - jac @ np.asarray(w_s0, np.float64)
    y = np.asarray(data.y, np.float64).reshape(data.n_trajectories, -1)
    prior_mean = np.asarray(w_s0, np.float64)
    prior_var = run.config.prior.scale**2
    noise_var = SIGMA**2 * run.config.train.beta
    precision = np.eye(len(w_s0)) / prior_var + len(y) * jac.T @ jac / noise_var
    rhs = prior_mean / prior_var + jac.T @ (y - offset).sum(axis=0) / noise_var
    return np.linalg.solve(precision, rhs), np.linalg.inv(precision)
