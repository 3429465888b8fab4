"""The neural-ODE data model: Heun integration, observation, construction."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from langevin_uq.datamodel import solve
from langevin_uq.errors import ConfigError
from langevin_uq.model import build_model
from langevin_uq.weights import make_partition

BASE = dict(n_outputs=1, n_inputs=0, hidden_state=0, R_hidden=[], R_activation="tanh",
            observation="identity", Z_hidden=[4], Z_activation="softplus")  # fmt: skip


def _linear(substeps=1):
    """dx/dt = -1.3 x + 0.7 as a function of (t, x, y0)."""
    model = build_model(**BASE, key=jr.key(0))
    model = make_partition(model).model(jnp.array([-1.3, 0.7]))
    return lambda t, x, y0: solve(model, t, x, y0, substeps)


@pytest.mark.parametrize("substeps", [1, 4])
def test_heun_is_second_order_on_a_linear_ode(substeps):
    """dx/dt = -1.3 x + 0.7 from x0 = 0.2: error shrinks ~4x when the step halves."""
    exact = lambda t: 0.7 / 1.3 + (0.2 - 0.7 / 1.3) * np.exp(-1.3 * t)  # noqa: E731
    model = _linear(substeps)
    errors = []
    for n in (21, 41):
        t = jnp.linspace(0.0, 4.0, n)
        y = model(t, jnp.zeros((n, 0)), jnp.array([0.2]))
        assert y.shape == (n, 1) and float(y[0, 0]) == pytest.approx(0.2)
        errors.append(float(jnp.max(jnp.abs(y[:, 0] - exact(np.asarray(t))))))
    assert 3.5 < errors[0] / errors[1] < 4.5
    assert errors[1] < 2e-3 / substeps**2


def test_substeps_match_a_finer_observation_grid():
    fine = _linear(1)(jnp.linspace(0, 4, 81), jnp.zeros((81, 0)), jnp.array([0.2]))
    sub = _linear(4)(jnp.linspace(0, 4, 21), jnp.zeros((21, 0)), jnp.array([0.2]))
    np.testing.assert_allclose(sub, fine[::4], rtol=1e-5, atol=1e-6)


def test_inputs_drive_the_state_and_mlp_observation():
    model = build_model(**{**BASE, "n_inputs": 2, "hidden_state": 3, "R_hidden": [5],
                           "observation": "mlp", "n_outputs": 2}, key=jr.key(1))  # fmt: skip
    t = jnp.linspace(0, 1, 6)
    x0, x1 = jnp.zeros((6, 2)), jnp.ones((6, 2))
    y0 = jnp.zeros(2)
    ya, yb = solve(model, t, x0, y0), solve(model, t, x1, y0)
    assert ya.shape == (6, 2) and not np.allclose(ya, yb)
    # vmap over trajectories
    batch = jax.vmap(lambda *a: solve(model, *a))(
        jnp.stack([t, t]), jnp.stack([x0, x1]), jnp.stack([y0, y0])
    )
    np.testing.assert_allclose(batch[1], yb, rtol=1e-6)


def test_hidden_state_starts_at_zero_with_mlp_observation():
    model = build_model(**{**BASE, "hidden_state": 2, "observation": "mlp"}, key=jr.key(2))
    x0 = jnp.zeros(0)
    np.testing.assert_array_equal(model.initial_state(jnp.array([5.0]), x0), np.zeros(2))
    ident = build_model(**{**BASE, "hidden_state": 3}, key=jr.key(2))
    np.testing.assert_array_equal(ident.initial_state(jnp.array([5.0]), x0), [5.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "change",
    [{"observation": "mlp"}, {"hidden_state": -1}, {"R_activation": "cosh"},
     {"observation": "potential"}, {"n_outputs": 2, "hidden_state": 1}],
)  # fmt: skip
def test_bad_model_options_are_refused(change):
    with pytest.raises(ConfigError):
        build_model(**{**BASE, **change}, key=jr.key(0))
