"""Sample quality of a fitted run: the score of the posterior it targets, and the KSD of its draws.

Every method (``ls``, ``bbvi-*``, ``nuts``) targets the same unnormalised posterior over the
stochastic weights (`langevin_uq.methods.probabilistic.ProbabilisticModel`, METHOD section 5 and 7):

    p(w_S) ∝ N(w_S; w_bar, diag s^2) exp(-L(w_S) / beta)

with ``w_bar`` the MLE's stochastic part (``prior.mean = "mle"``) or zeros, ``s`` =
``prior.scale``, ``beta`` = ``train.beta`` and ``L`` the likelihood's data term of one weight
vector on the whole training split, in scaled units. `posterior_score_fn` rebuilds ``L`` from the
training data exactly as `langevin_uq.run.fit` does (same split, scaler, MLE predictions and
likelihood), and `run_diagnostics` judges the run's draws against its gradient with
`langevin_uq.diagnostics.ksd_report`.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy.stats import norm

from . import rundir
from ._finite import nonfinite_rows
from ._types import Array, Float, PRNGKeyArray
from .data import Trajectories
from .diagnostics import ksd_report, verdict
from .errors import DataError
from .posterior import EmpiricalPosterior, LangevinPosterior
from .prepare import relabel_groups, run_likelihood, scaled_split
from .prior import ou_prior
from .problem import data_log_tilt, predict_groups, training_arrays
from .run import FittedRun, sample_weights
from .sampler import Drift, LangevinSampler

KSD_FILE = rundir.KSD
"""Where a run directory (and its ``report/``) keeps `run_diagnostics`'s dict."""
DENSITY_LIKELIHOODS = ("gaussian", "marginal-mixture")
"""Likelihood kinds that are densities; the energy score is a scoring rule, with no posterior
density to take the score of."""


def _no_density_reason(run: FittedRun) -> str | None:
    """Why the run's target has no density to score, or ``None`` when it has one."""
    kind = run.config.likelihood.kind
    if kind not in DENSITY_LIKELIHOODS:
        return (
            f"likelihood.kind = {kind!r} is a scoring rule, not a density: its generalised "
            "posterior has no score to test the samples against (the KSD needs a gaussian or "
            "marginal-mixture likelihood)"
        )
    if not run.config.train.beta > 0:
        return "train.beta = 0 weighs the prior by 0: the target is no density over w_S"
    return None


def no_density(run: FittedRun) -> dict | None:
    """`run_diagnostics`'s answer for a run whose target has no density (it needs no data),
    or ``None`` when the target has one."""
    why = _no_density_reason(run)
    if why is None:
        return None
    return {"ksd": None, "verdict": None, "why": why, "method": run.config.method.kind}


def _data_term(run: FittedRun, data: Trajectories):
    """The likelihood, group inputs and training arrays of ``L``, built as `fit` builds them.

    As in `langevin_uq.run.fit`: group ids relabelled ``0..G-1``, the training split drawn with
    the run's seed, every group's inputs (validation ones too) and the likelihood from the
    training split and the MLE's predictions, in the run's scaled units and dtype.
    """
    config, partition, scaler = run.config, run.partition, run.scaler
    dtype = run.w_mle.dtype
    n_outputs = scaler.shift.shape[0]
    if data.n_outputs != n_outputs:
        raise DataError(
            f"the data have {data.n_outputs} outputs but the run's model predicts {n_outputs}; "
            "pass the data the run was fitted to"
        )
    seed = config.train.seed
    train, _, _, inputs = scaled_split(relabel_groups(data), config.data, seed, dtype, scaler)
    train_s = scaler.transform(train)
    y_mle = predict_groups(partition, run.w_mle, inputs)
    likelihood = run_likelihood(config.likelihood, seed, train_s, inputs.n_groups, y_mle, scaler,
                                dtype)  # fmt: skip
    return likelihood, inputs, training_arrays(train_s, dtype)


def posterior_score_fn(
    run: FittedRun, data: Trajectories
) -> Callable[[Float[Array, " ns"]], Float[Array, " ns"]] | None:
    """``w_S -> grad log p(w_S)`` of the posterior the run targets, or ``None`` without a density.

    Args:
        run: a fitted run (`langevin_uq.run.fit` or `langevin_uq.run.load_run`).
        data: the trajectories the run was fitted to (all of them: the training split is drawn
            from them with the run's seed, as `fit` does), in their own units.

    Returns:
        A jittable function of one ``(ns,)`` stochastic-weight vector, in the run's dtype; or
        ``None`` for the energy score (a scoring rule) or ``train.beta = 0``.

    Raises:
        DataError: the data's outputs do not match the run's model.
    """
    if _no_density_reason(run) is not None:
        return None
    likelihood, inputs, arrays = _data_term(run, data)
    config, partition, dtype = run.config, run.partition, run.w_mle.dtype
    prior = ou_prior(partition, run.w_mle, config.prior)
    beta = jnp.asarray(config.train.beta, dtype)
    tilt = data_log_tilt(partition, likelihood, inputs, arrays, run.w_d, beta)

    def log_density(w_s):
        return -0.5 * jnp.sum(prior.whiten(w_s) ** 2) + tilt(w_s)[0]

    return jax.grad(log_density)


DISCRETISATION_DRAWS = 4096
"""Draws per grid in `discretisation_check`."""
DISCRETISATION_LEVEL = 1e-3
"""Family-wise false-alarm rate of `discretisation_check` over all weights and both moments."""


def discretisation_check(
    sampler: LangevinSampler,
    drift: Drift,
    key: PRNGKeyArray,
    n: int = DISCRETISATION_DRAWS,
    *,
    coarse: Float[Array, "n ns"] | None = None,
) -> dict:
    """Whether the trained drift's law at ``T`` depends on the pseudo-time grid (issue 16).

    Draws ``n`` replicas on the run's grid and ``n`` on `LangevinSampler.refined` (twice the
    steps, same drift) and compares, per stochastic weight, the means (shift in units of the
    coarse draws' sd) and the sds (ratio). Under "same law" the shift of weight ``i`` is about
    ``N(0, 2/n)`` and the log sd ratio about ``N(0, 1/n)`` (Gaussian marginals; heavier tails
    widen it); the tolerances are these times the two-sided normal quantile at
    `DISCRETISATION_LEVEL` / (2 d), a Bonferroni bound over all weights and both moments.

    ``coarse``: the run's own draws on its grid, when already drawn (keys other than
    ``key``'s); then ``n`` is their number.

    Returns:
        ``{"steps", "draws", "mean_shift", "sd_change", "mean_tolerance", "sd_tolerance",
        "verdict"}``: the largest ``|shift|`` and ``|log sd ratio|`` over the weights, their
        tolerances, and a sentence when one exceeds its tolerance (else ``None``).
    """
    k_coarse, k_fine = jr.split(key)
    if coarse is None:
        coarse = _simulate(sampler, drift, k_coarse, n)
    n = coarse.shape[0]
    fine = _simulate(sampler.refined(), drift, k_fine, n)
    a, b = np.asarray(coarse, np.float64), np.asarray(fine, np.float64)
    sd_a, sd_b = a.std(0), b.std(0)
    tiny = np.finfo(np.float32).tiny
    shift = float(np.max(np.abs(b.mean(0) - a.mean(0)) / np.maximum(sd_a, tiny)))
    change = float(np.max(np.abs(np.log(np.maximum(sd_b, tiny) / np.maximum(sd_a, tiny)))))
    z = float(norm.isf(DISCRETISATION_LEVEL / (4 * a.shape[1])))
    mean_tol, sd_tol = z * math.sqrt(2 / n), z * math.sqrt(1 / n)
    steps = int(sampler.remaining.shape[0] - 1)
    sentence = None
    if shift > mean_tol or change > sd_tol:
        moved, allowed = 100 * math.expm1(change), 100 * math.expm1(sd_tol)
        sentence = (
            f"the pseudo-time grid is too coarse for the trained drift: twice the {steps} steps "
            f"moves a weight's mean by {shift:.3g} sds and its sd by {moved:.3g} % (tolerances "
            f"{mean_tol:.3g} sds and {allowed:.3g} %); raise sampler.steps at the same span "
            "(and lower sampler.dtau to match)"
        )
    return {"steps": steps, "draws": n, "mean_shift": shift, "sd_change": change,
            "mean_tolerance": mean_tol, "sd_tolerance": sd_tol, "verdict": sentence}  # fmt: skip


@eqx.filter_jit
def _simulate(sampler: LangevinSampler, drift: Drift, key: PRNGKeyArray, n: int):
    return sampler.simulate(drift, key, n)[0]


def run_diagnostics(run: FittedRun, data: Trajectories, key: PRNGKeyArray, n: int = 512) -> dict:
    """The KSD of ``n`` fresh posterior draws of ``w_S`` against the run's posterior score.

    NUTS runs draw at most their stored number of draws (so none repeats). Chain draws are
    autocorrelated, which the U-test's null variance (for independent draws) does not know, so
    a NUTS run's ``z`` and ``p`` overstate the disagreement (more the lower its ESS).

    Args:
        run: a fitted run.
        data: the trajectories the run was fitted to (see `posterior_score_fn`).
        key: draws the samples and the KSD's reference.
        n: number of posterior draws to judge (the KSD costs ``n^2``).

    Returns:
        A JSON-able dict: `langevin_uq.diagnostics.ksd_report`'s numbers (``ksd``,
        ``reference``, ``ratio``, ``z``, ``p``, ``dispersion``, ``dispersion_se``, ``n``) with
        ``verdict`` (the sentence, or ``None``), ``method`` and ``dimension``; or
        ``{"ksd": None, "why": ...}`` when the target has no density (energy score,
        ``beta = 0``).
    """
    sample_key, ksd_key = jr.split(key)
    grid = draws = None
    if isinstance(run.posterior, LangevinPosterior):
        # One set of draws serves both checks (one compilation less per fit). A Gauss-Newton
        # guide solves the data model at every step of every draw: only the KSD's n for it.
        p = run.posterior
        count = n if p.drift.guide is not None else max(n, DISCRETISATION_DRAWS)
        draws = _simulate(p.sampler, p.drift, sample_key, count)
        grid = discretisation_check(p.sampler, p.drift, jr.fold_in(key, 1), coarse=draws)
    if (answer := no_density(run)) is not None:
        return {**answer, "discretisation": grid}
    if isinstance(run.posterior, EmpiricalPosterior):
        n = min(n, run.posterior.samples.shape[0])
    score_fn = posterior_score_fn(run, data)
    if draws is not None:
        w_s = draws[:n]
    else:
        w_s = sample_weights(run, n, sample_key)[:, np.asarray(run.partition.stochastic_mask)]
    try:
        report = ksd_report(w_s, score_fn, ksd_key, max_samples=n)
    except eqx.EquinoxRuntimeError:  # a draw where the posterior's score is not finite
        scores = jax.jit(jax.vmap(score_fn))(w_s)
        bad = int(jnp.sum(nonfinite_rows(scores)))
        why = (f"{bad} of {w_s.shape[0]} draws lie where the posterior's score is not finite "
               "(the data model overflows there): the sampler put mass where the posterior "
               "has none")  # fmt: skip
        return {"ksd": None, "verdict": why, "why": why, "method": run.config.method.kind,
                "dimension": int(w_s.shape[1]), "discretisation": grid}  # fmt: skip
    return {**report, "verdict": verdict(report), "method": run.config.method.kind,
            "dimension": int(w_s.shape[1]), "discretisation": grid}  # fmt: skip
