"""Black-box variational inference (``method.kind = "bbvi-*"``): a Gaussian guide trained
through NumPyro's ELBO.

The guide is ``N(loc, L L^T)`` over the stochastic weights with ``L`` a full lower-triangular
factor (``bbvi-full``; on OU the paper's five-parameter bivariate Gaussian) or a diagonal one
(``bbvi-meanfield``). Each step draws ``particles`` weight vectors from the guide and scores
them with the same likelihood as the Langevin sampler; NumPyro's `TraceMeanField_ELBO` takes
the KL to the Gaussian prior in closed form. The objective per particle,

    loss = E_q[ data term ] + beta KL(q || prior),

has the same form as the Langevin sampler's Eq. 13 with the path KL replaced by the KL of the
guide, so `langevin_uq.train.make_chunk_step` trains both.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.kl import kl_divergence
from numpyro.distributions.transforms import biject_to
from numpyro.infer import TraceMeanField_ELBO

from .._types import Array, Float, Int, PRNGKeyArray, PyTree
from ..config import MethodOptions, TrainOptions
from ..posterior import GaussianPosterior
from ..problem import TrainingArrays, predict_ensemble
from ..train import heldout_score, minibatch
from .base import AbstractMethod
from .probabilistic import ProbabilisticModel, probabilistic_model

KINDS = ("bbvi-full", "bbvi-meanfield")


def _constraint(full: bool):
    return constraints.lower_cholesky if full else constraints.positive


class GaussianGuide(eqx.Module):
    """The variational family as a NumPyro guide (its params come from the objective).

    Attributes:
        full: full covariance (``scale_tril``) or mean-field (``scale``).
        particles: draws per step, in a plate named as the model's.
        beta: the model's prior weight, applied to the guide's site too.
    """

    full: bool = eqx.field(static=True)
    particles: int = eqx.field(static=True)
    beta: float = eqx.field(static=True, default=1.0)

    def distribution(self, constrained: dict[str, Array]) -> dist.Distribution:
        loc = constrained["loc"]
        if self.full:
            return dist.MultivariateNormal(loc, scale_tril=constrained["scale_tril"])
        return dist.Normal(loc, constrained["scale"]).to_event(1)

    def __call__(self, y, group, scale) -> None:
        names = ("loc", "scale_tril") if self.full else ("loc", "scale")
        constrained = {name: numpyro.param(name) for name in names}
        with numpyro.handlers.scale(scale=self.beta), numpyro.plate("particles", self.particles):
            numpyro.sample("w", self.distribution(constrained))


def init_params(
    loc: Float[Array, " ns"], init_scale: float, full: bool, w_d: Float[Array, " nd"] | None
) -> dict[str, Array]:
    """Unconstrained guide parameters: mean ``loc``, sd ``init_scale`` in every direction, and
    ``w_d`` when the deterministic weights are re-optimised (``bll-reopt``)."""
    n = loc.shape[0]
    if full:
        value = init_scale * jnp.eye(n, dtype=loc.dtype)
        params = {"loc": loc, "scale_tril": biject_to(_constraint(True)).inv(value)}
    else:
        value = jnp.full((n,), init_scale, loc.dtype)
        params = {"loc": loc, "scale": biject_to(_constraint(False)).inv(value)}
    if w_d is not None:
        params["w_d"] = w_d
    return params


def constrain(params: dict[str, Array], full: bool) -> dict[str, Array]:
    """Guide parameters in their natural space (``scale_tril`` lower-triangular, ``scale > 0``)."""
    name = "scale_tril" if full else "scale"
    out = dict(params)
    out[name] = biject_to(_constraint(full))(params[name])
    return out


def posterior(params: dict[str, Array], full: bool) -> GaussianPosterior:
    """The fitted guide as a `GaussianPosterior` (a diagonal factor for mean-field)."""
    c = constrain(params, full)
    tril = c["scale_tril"] if full else jnp.diag(c["scale"])
    return GaussianPosterior(loc=c["loc"], scale_tril=tril)


class BBVIObjective(eqx.Module):
    """Negative ELBO per particle of the Gaussian guide (NumPyro `TraceMeanField_ELBO`).

    Attributes:
        model: the NumPyro model with ``particles`` draws per evaluation.
        guide: the Gaussian guide with the same number of particles.
        train, validation: observed trajectories (validation may be ``None``).
        batch: trajectories per epoch in the data term (``0`` = all).
    """

    model: ProbabilisticModel
    guide: GaussianGuide
    train: TrainingArrays
    validation: TrainingArrays | None
    batch: int = eqx.field(static=True)

    def __call__(self, params: PyTree, key: PRNGKeyArray, epoch: Int[Array, ""]):
        """``(loss, (nll, kl, heldout, gamma))``; ``gamma`` is 1 (no diffusion to anneal)."""
        k_elbo, k_batch, k_heldout = jr.split(key, 3)
        dtype = params["loc"].dtype
        y, group, scale = minibatch(self.train, self.batch, k_batch, dtype)
        constrained = constrain(params, self.guide.full)
        n = self.model.particles
        loss = TraceMeanField_ELBO().loss(k_elbo, constrained, self.model, self.guide,
                                          y, group, scale) / n  # fmt: skip
        q = self.guide.distribution(constrained)
        kl = kl_divergence(q, self.model.prior_law())
        nll = loss - self.model.beta * kl
        heldout = jnp.asarray(jnp.nan, dtype)
        if self.validation is not None:
            w_s = jax.lax.stop_gradient(q.sample(k_heldout, (n,)))
            w_d = constrained.get("w_d", self.model.w_d)
            w = self.model.partition.join(w_s, w_d)
            pred = predict_ensemble(self.model.partition, w, self.model.inputs)
            heldout = heldout_score(pred, self.validation)
        return loss, (nll, kl, heldout, jnp.asarray(1.0, dtype))


class BBVIMethod(AbstractMethod):
    """A Gaussian guide of ``[method]`` (full or mean-field covariance) trained with ``[train]``.

    Its parameters are the guide's unconstrained ``loc`` and scale (and ``w_d`` for
    ``bll-reopt``), starting at the MLE's ``w_S`` with sd ``method.init_scale``.
    """

    kinds: ClassVar[tuple[str, ...]] = KINDS
    min_epochs: ClassVar[int] = 1
    min_particles: ClassVar[int] = 2

    method: MethodOptions
    train: TrainOptions

    @property
    def full(self) -> bool:
        return self.method.kind == "bbvi-full"

    def skeleton(self, setup, record: dict | None) -> dict[str, Array]:
        w_s, w_d = setup.partition.split(setup.w_mle)
        w_d_opt = w_d if setup.partition.reoptimise_deterministic else None
        return init_params(w_s, self.method.init_scale, self.full, w_d_opt)

    def objective(self, problem, record: dict | None) -> BBVIObjective:
        tr = self.train
        model = probabilistic_model(
            problem, full_covariance=self.full, particles=self.method.particles, beta=tr.beta
        )
        guide = GaussianGuide(full=self.full, particles=model.particles, beta=model.beta)
        return BBVIObjective(
            model=model, guide=guide, train=problem.train, validation=problem.validation,
            batch=tr.batch_trajectories,
        )  # fmt: skip

    def posterior(self, setup, params: dict[str, Array], record: dict | None):
        return posterior(params, self.full), params.get("w_d", setup.w_d)
