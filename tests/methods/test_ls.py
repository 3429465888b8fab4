"""The Langevin sampler's training loss (`langevin_uq.methods.ls.ELBO`): its two gradients."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from linear_gaussian import LINEAR_GAUSSIAN, noisy_ou

from langevin_uq.config import Config
from langevin_uq.methods import method_for
from langevin_uq.prepare import data_model, dtype_of, prepare, relabel_groups

KEYS = 128


def _guided_elbo():
    """The ELBO of the linear-Gaussian problem with the Gauss-Newton guide, the point where it
    is evaluated (the drift's MLP moved off its zero last layer along a random direction) and
    that direction."""
    config = Config().replace(**LINEAR_GAUSSIAN)
    config = config.replace(sampler={"replicas": 32, "steps": 50, "drift_init": "gauss-newton"})
    data = relabel_groups(noisy_ou())
    dtype = dtype_of(config.train)
    model, own = data_model(config.model, config.train.seed, data.n_outputs, data.n_inputs,
                            dtype)  # fmt: skip
    problem = prepare(data, model, own, dtype, None, data_options=config.data,
                      model_options=config.model, partition=config.partition,
                      prior=config.prior, likelihood=config.likelihood,
                      train=config.train)  # fmt: skip
    method = method_for(config)
    params, record = method.init(problem)
    elbo = method.objective(problem, record)
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)
    mlp = dynamic.drift.residual.mlp
    leaves = jax.tree.leaves(mlp)
    keys = jr.split(jr.key(1), len(leaves))
    steps = [jr.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    zero = jax.tree.map(jnp.zeros_like, dynamic)
    direction = eqx.tree_at(lambda p: p.drift.residual.mlp, zero,
                            jax.tree.unflatten(jax.tree.structure(mlp), steps))  # fmt: skip
    point = jax.tree.map(jnp.add, dynamic, direction)
    return elbo, point, static, direction


def _gradients(elbo, point, static, detached: bool) -> np.ndarray:
    """The gradient at ``point`` for `KEYS` keys, flattened ``(KEYS, n_params)``."""
    objective = dataclasses.replace(elbo, detached=detached)

    def loss(p, key):
        return objective(eqx.combine(p, static), key, jnp.asarray(0))[0]

    grads = eqx.filter_jit(eqx.filter_vmap(eqx.filter_grad(loss), in_axes=(None, 0)))(
        point, jr.split(jr.key(2), KEYS)
    )
    return np.concatenate([np.asarray(g).reshape(KEYS, -1) for g in jax.tree.leaves(grads)], 1)


def test_the_detached_gradient_has_the_reparameterised_gradients_expectation():
    """With a guide the ELBO's gradient is the score function's along detached paths
    (`ELBO.detached`): unbiased for the gradient of the same loss. Measured against the gradient
    through the paths at a generic point of the drift (256 keys: derivative along the direction
    0.497 +- 0.010 through the paths, 0.478 +- 0.017 detached; about 30 standard errors from
    zero), both from the same loss's value."""
    elbo, point, static, direction = _guided_elbo()
    assert elbo.detached  # the default wherever a guide is present
    along = np.concatenate([np.asarray(d).ravel() for d in jax.tree.leaves(direction)])
    plain = _gradients(elbo, point, static, detached=False)
    detached = _gradients(elbo, point, static, detached=True)
    a, b = plain @ along, detached @ along
    se = np.sqrt((a.var() + b.var()) / KEYS)
    assert abs(a.mean()) > 10 * a.std() / np.sqrt(KEYS)  # a derivative the test can see
    assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)
    spread = np.sqrt(np.sum(plain.var(0) + detached.var(0)) / KEYS)
    assert np.linalg.norm(plain.mean(0) - detached.mean(0)) < 3 * spread

    def value(detached):
        objective = dataclasses.replace(elbo, detached=detached)
        return objective(eqx.combine(point, static), jr.key(3), jnp.asarray(0))

    (loss_p, (nll_p, kl_p, _, _)), (loss_d, (nll_d, kl_d, _, _)) = value(False), value(True)
    # same paths, same data term; the detached KL adds the Ito term of mean zero
    np.testing.assert_allclose(nll_d, nll_p, rtol=1e-5)
    np.testing.assert_allclose(loss_d - elbo.beta * kl_d, loss_p - elbo.beta * kl_p, rtol=1e-5)
