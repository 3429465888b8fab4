"""The data model, a likelihood and the Gaussian prior as one NumPyro model.

The prior is the stationary law of the OU prior SDE, ``N(w_bar, s^2 I)`` (METHOD section 5);
the data term is the likelihood's ``loss`` (METHOD section 7), so BBVI, NUTS and the Langevin
sampler score weights identically.
"""

import equinox as eqx
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

from .._types import Array, Float, Int
from ..likelihoods import AbstractLikelihood
from ..prior import OUPrior
from ..problem import GroupInputs, predict_ensemble_finite
from ..weights import WeightPartition


class ProbabilisticModel(eqx.Module):
    """``w_S ~ N(w_bar, diag s^2)``, ``factor(-loss(data | w_S, w_D))``.

    With ``particles > 0`` the model draws that many independent weight vectors in a plate (one
    BBVI step scores them together, which is what a population score such as the energy score
    needs); with ``particles = 0`` it draws one (NUTS).

    Attributes:
        partition: flat-weight layout and ``w_S``/``w_D`` split.
        likelihood: the data term.
        inputs: one input per condition group.
        prior: the OU prior of ``w_S``; its stationary law ``N(w_bar, diag s^2)`` is the prior.
        w_d: the deterministic weights when they are not optimised, ``(nd,)``.
        full_covariance: write the prior as a multivariate normal (so that NumPyro's analytic
            KL applies against a full-covariance guide) rather than independent normals.
        reoptimise: ``w_D`` is a NumPyro param (``bll-reopt``) initialised at ``w_d``.
        particles: weight vectors per model evaluation (``0`` = one, no plate).
        beta: weight of the prior (the KL in BBVI), as in the Langevin sampler's loss.
    """

    partition: WeightPartition
    likelihood: AbstractLikelihood
    inputs: GroupInputs
    prior: OUPrior
    w_d: Float[Array, " nd"]
    full_covariance: bool = eqx.field(static=True, default=False)
    reoptimise: bool = eqx.field(static=True, default=False)
    particles: int = eqx.field(static=True, default=0)
    beta: float = eqx.field(static=True, default=1.0)

    def prior_law(self) -> dist.Distribution:
        if self.full_covariance:
            tril = jnp.diag(self.prior.scale)
            return dist.MultivariateNormal(self.prior.mean, scale_tril=tril)
        return dist.Normal(self.prior.mean, self.prior.scale).to_event(1)

    def __call__(
        self, y: Float[Array, "B T ny"], group: Int[Array, " B"], scale: Float[Array, ""]
    ) -> None:
        with handlers.scale(scale=self.beta):
            if self.particles:
                with numpyro.plate("particles", self.particles):
                    w_s = numpyro.sample("w", self.prior_law())
            else:
                w_s = numpyro.sample("w", self.prior_law())[None]
        w_d = numpyro.param("w_d", self.w_d) if self.reoptimise else self.w_d
        w = self.partition.join(w_s, w_d)
        pred, _ = predict_ensemble_finite(self.partition, w, self.inputs, jnp.max(jnp.abs(y)))
        # loss is the mean over weight vectors of -log p(D | w) (or the ensemble's score): the
        # factor is the sum, matching the prior's sum over the plate.
        log_sigma = self.partition.log_sigma(w)
        numpyro.factor(
            "data", -w_s.shape[0] * self.likelihood.loss(pred, y, group, scale, log_sigma)
        )


def probabilistic_model(
    problem, *, full_covariance: bool = False, particles: int = 0, beta: float = 1.0
) -> ProbabilisticModel:
    """The NumPyro model of a `langevin_uq.prepare.Problem`: its data model, likelihood and
    prior, ``w_D`` at the MLE (a NumPyro param when the partition re-optimises it)."""
    return ProbabilisticModel(
        partition=problem.partition, likelihood=problem.likelihood, inputs=problem.inputs,
        prior=problem.prior, w_d=problem.w_d, full_covariance=full_covariance,
        reoptimise=problem.partition.reoptimise_deterministic, particles=particles, beta=beta,
    )  # fmt: skip
