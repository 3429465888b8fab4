"""What a fitted run draws its stochastic weights ``w_S`` from, one class per kind of method.

* `LangevinPosterior`: the learned SDE (the Langevin sampler, LS); a draw is one simulation.
* `GaussianPosterior`: a Gaussian variational family (BBVI, full or mean-field covariance).
* `EmpiricalPosterior`: stored Markov-chain draws (NUTS).

Every posterior draws ``(n, ns)`` samples from a `jax.random` key and nothing else, so
`langevin_uq.run.sample_weights` treats the methods alike.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr

from ._types import Array, Float, PRNGKeyArray
from .sampler import Drift, LangevinSampler


class AbstractPosterior(eqx.Module):
    """A law over the stochastic weights that can be sampled."""

    @abc.abstractmethod
    def draw(self, key: PRNGKeyArray, n: int) -> Float[Array, "n ns"]:
        """``n`` independent draws of ``w_S`` (for `EmpiricalPosterior`: draws of the chain)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What a draw runs, in words (for `sample` and the report)."""


class LangevinPosterior(AbstractPosterior):
    """The Langevin hypernetwork: replicas of the learned SDE at pseudo-time ``T``.

    Attributes:
        sampler: prior, pseudo-time grid and initial condition.
        drift: the trained drift correction.
    """

    sampler: LangevinSampler
    drift: Drift

    def draw(self, key, n):
        return self.sampler.simulate(self.drift, key, n)[0]

    def describe(self):
        steps = self.sampler.remaining.shape[0] - 1
        what = (f"the learned SDE ({steps} steps): a Gaussian h-transform and an MLP on "
                f"{self.drift.rank} data-informed directions")  # fmt: skip
        if self.drift.guide is not None:
            return what + ", plus the Gauss-Newton guide, which evaluates the data model"
        return what + "; no data-model evaluations"


class GaussianPosterior(AbstractPosterior):
    """``N(loc, scale_tril scale_tril^T)``; mean-field when ``scale_tril`` is diagonal.

    Attributes:
        loc: the mean, ``(ns,)``.
        scale_tril: lower-triangular Cholesky factor of the covariance, ``(ns, ns)``.
    """

    loc: Float[Array, " ns"]
    scale_tril: Float[Array, "ns ns"]

    def draw(self, key, n):
        z = jr.normal(key, (n, self.loc.shape[0]), self.loc.dtype)
        return self.loc + z @ self.scale_tril.T

    def describe(self):
        return "the Gaussian variational guide"


class EmpiricalPosterior(AbstractPosterior):
    """Stored posterior draws (all chains pooled), resampled uniformly.

    ``n`` up to the number stored gives distinct draws (without replacement); more than that
    repeats draws (with replacement), which adds no information beyond the chains.

    Attributes:
        samples: the pooled draws, ``(S, ns)``.
    """

    samples: Float[Array, "S ns"]

    def draw(self, key, n):
        stored = self.samples.shape[0]
        idx = jr.choice(key, stored, (n,), replace=n > stored)
        return jnp.take(self.samples, idx, axis=0)

    def describe(self):
        return f"the {self.samples.shape[0]} stored chain draws"
