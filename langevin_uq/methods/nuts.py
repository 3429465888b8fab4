"""The No-U-Turn sampler (``method.kind = "nuts"``) through NumPyro: the reference posterior
for probabilistic likelihoods.

Runs ``chains`` chains from the MLE after ``warmup`` adaptation steps each, in parallel over
devices when there are enough of them (else one after the other), and reports the split R-hat,
the effective sample size per weight and the number of divergent transitions.
"""

import time
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS, init_to_value

from .._types import Array, Bool, Float, Int, PRNGKeyArray
from ..config import MethodOptions, TrainOptions
from ..posterior import EmpiricalPosterior
from .base import AbstractMethod
from .probabilistic import ProbabilisticModel, probabilistic_model


class NUTSResult(NamedTuple):
    """Draws and diagnostics of a NUTS run.

    Attributes:
        samples: draws of ``w_S`` per chain, ``(chains, draws, ns)``.
        diverging: divergent transitions, ``(chains, draws)``.
        r_hat: split R-hat per weight, ``(ns,)``.
        ess: effective sample size per weight (all chains), ``(ns,)``.
        seconds: wall time of warm-up and sampling, compilation included.
        chain_method: ``"parallel"`` (one device per chain) or ``"sequential"``.
    """

    samples: Float[np.ndarray, "C D ns"]
    diverging: Bool[np.ndarray, "C D"]
    r_hat: Float[np.ndarray, " ns"]
    ess: Float[np.ndarray, " ns"]
    seconds: float
    chain_method: str

    def summary(self) -> dict:
        """JSON-ready diagnostics: R-hat and ESS ranges, ESS per second, divergences."""
        return {
            "chains": int(self.samples.shape[0]),
            "draws_per_chain": int(self.samples.shape[1]),
            "chain_method": self.chain_method,
            "seconds": self.seconds,
            "r_hat_max": float(np.max(self.r_hat)),
            "ess_min": float(np.min(self.ess)),
            "ess_median": float(np.median(self.ess)),
            "ess_per_second_min": float(np.min(self.ess) / self.seconds),
            "divergences": int(np.sum(self.diverging)),
        }


def run_nuts(
    model: ProbabilisticModel,
    y: Float[Array, "N T ny"],
    group: Int[Array, " N"],
    init: Float[Array, " ns"],
    key: PRNGKeyArray,
    *,
    warmup: int,
    samples: int,
    chains: int,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    progress: bool = False,
) -> NUTSResult:
    """Sample ``p(w_S | D)`` proportional to ``prior exp(-loss / beta)`` with NUTS.

    That is the law the Langevin sampler's and BBVI's ``loss + beta KL`` are minimised by; the
    model weighs the prior by ``beta`` (as BBVI's KL), so its whole log density is divided by
    ``beta`` here.

    Args:
        model: the NumPyro model with ``particles = 0`` (one weight vector per evaluation).
        y, group: all training trajectories (NUTS uses the full data in every step).
        init: every chain starts here (the MLE's ``w_S``).
        key: the key of the whole run; chain ``c`` uses its own split.
        warmup, samples: adaptation steps and kept draws per chain.
        chains: number of chains.
        target_accept, max_tree_depth: NUTS step-size target and tree depth limit.
        progress: show NumPyro's progress bar.
    """
    method = "parallel" if chains > 1 and jax.local_device_count() >= chains else "sequential"
    kernel = NUTS(
        handlers.scale(model, scale=1.0 / model.beta),
        target_accept_prob=target_accept,
        max_tree_depth=max_tree_depth,
        init_strategy=init_to_value(values={"w": init}),
    )
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method=method, progress_bar=progress)  # fmt: skip
    t0 = time.perf_counter()
    mcmc.run(key, y, group, jnp.asarray(1.0, init.dtype), extra_fields=("diverging",))
    draws = np.asarray(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)["w"]))
    seconds = time.perf_counter() - t0
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    draws64 = draws.astype(np.float64)
    r_hat = (
        np.asarray(split_gelman_rubin(draws64))
        if samples >= 4
        else np.full(draws.shape[-1], np.nan)
    )
    ess = np.asarray(effective_sample_size(draws64))
    return NUTSResult(draws, diverging, r_hat, ess, seconds, method)


class NUTSMethod(AbstractMethod):
    """NUTS chains of ``[method]`` from the MLE's ``w_S``; nothing is trained.

    It needs a density (no energy score), a fixed ``w_D`` and ``train.beta > 0``.
    """

    kinds: ClassVar[tuple[str, ...]] = ("nuts",)
    likelihoods: ClassVar[tuple[str, ...]] = ("gaussian", "marginal-mixture")
    reoptimises: ClassVar[bool] = False
    trained: ClassVar[bool] = False

    method: MethodOptions
    train: TrainOptions

    def run(self, problem, key: PRNGKeyArray, *, progress: bool = False) -> NUTSResult:
        m = self.method
        model = probabilistic_model(problem, beta=self.train.beta)
        return run_nuts(
            model, problem.train.y, problem.train.group, problem.partition.split(problem.w_mle)[0],
            key, warmup=m.warmup, samples=m.samples, chains=m.chains,
            target_accept=m.target_accept, max_tree_depth=m.max_tree_depth, progress=progress,
        )  # fmt: skip

    def posterior(self, setup, params: np.ndarray, record: dict | None):
        """``params``: the draws of ``w_S``, ``(chains, draws, ns)``."""
        w_s = jnp.asarray(params, setup.dtype).reshape(-1, setup.partition.n_stochastic)
        return EmpiricalPosterior(w_s), setup.w_d
