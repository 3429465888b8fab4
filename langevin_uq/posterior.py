"""What a fitted run draws its stochastic weights ``w_S`` from, one class per kind of method.

* `LangevinPosterior`: the learned SDE (the Langevin sampler, LS); a draw is one simulation.
* `GaussianPosterior`: a Gaussian variational family (BBVI, full or mean-field covariance).
* `EmpiricalPosterior`: stored Markov-chain draws (NUTS).

Every posterior draws ``(n, ns)`` samples from a `jax.random` key and nothing else, so
`langevin_uq.run.sample_weights` treats the methods alike.
"""

import abc
import warnings

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._types import Array, Bool, Float, PRNGKeyArray
from .errors import SupportWarning, TrainingDivergedError
from .sampler import Drift, LangevinSampler


class AbstractPosterior(eqx.Module):
    """A law over the stochastic weights that can be sampled."""

    @abc.abstractmethod
    def draw(self, key: PRNGKeyArray, n: int) -> Float[Array, "n ns"]:
        """``n`` independent draws of ``w_S`` (for `EmpiricalPosterior`: draws of the chain)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What a draw runs, in words (for `sample` and the report)."""

    def outside_support(self, w_s: Float[Array, "n ns"]) -> Bool[Array, " n"]:
        """Which draws are known to lie where the posterior has no mass; none unless a draw
        already evaluates the data model (then those where it overflows)."""
        return jnp.zeros(w_s.shape[0], bool)


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

    def outside_support(self, w_s):
        if self.drift.guide is None:
            return super().outside_support(w_s)
        return self.drift.guide.overflows(w_s)

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


MAX_OUTSIDE_FRACTION = 0.01
"""Above this share of draws outside the posterior's support `draw_in_support` refuses: the
sampler's law is then too far from the posterior for a redraw to hide it."""


def draw_in_support(
    posterior: AbstractPosterior, key: PRNGKeyArray, n: int, *, rounds: int = 8
) -> Float[Array, "n ns"]:
    """``n`` draws of ``posterior`` conditioned on its support: a draw that
    `AbstractPosterior.outside_support` flags (the data model overflows there, so the data term
    is infinite and the posterior density zero) is replaced by a fresh one, with a
    `SupportWarning` that counts them.

    Before its steps were damped the Gauss-Newton guide put 3 draws in 2000 there on the
    reaction network of ``examples/`` (its linearisation cannot see where the solver blows up);
    more than `MAX_OUTSIDE_FRACTION` raises `TrainingDivergedError` instead.
    """
    w_s = _draw(posterior, key, n)
    bad = np.array(_outside(posterior, w_s))
    first = int(bad.sum())
    if first == 0:
        return w_s
    if first > MAX_OUTSIDE_FRACTION * n:
        raise TrainingDivergedError(
            f"{first} of {n} posterior draws make the data model overflow (more than "
            f"{MAX_OUTSIDE_FRACTION:.0%}): the sampler put mass where the posterior has none"
        )
    for r in range(rounds):
        size = 1 << int(np.ceil(np.log2(2 * bad.sum())))  # few shapes, few compilations
        fresh = _draw(posterior, jr.fold_in(key, r + 1), size)
        good = np.flatnonzero(~np.asarray(_outside(posterior, fresh)))
        rows = np.flatnonzero(bad)[: good.size]
        w_s = w_s.at[rows].set(fresh[good[: rows.size]])
        bad[rows] = False
        if not bad.any():
            warnings.warn(
                f"{first} of {n} posterior draws made the data model overflow (outside the "
                "posterior's support) and were drawn again",
                SupportWarning,
                stacklevel=3,
            )
            return w_s
    raise TrainingDivergedError(
        f"{int(bad.sum())} of {n} posterior draws still make the data model overflow after "
        f"{rounds} redraws"
    )


@eqx.filter_jit
def _draw(posterior: AbstractPosterior, key, n: int):
    return posterior.draw(key, n)


@eqx.filter_jit
def _outside(posterior: AbstractPosterior, w_s):
    return posterior.outside_support(w_s)
