"""Group inputs and ensemble predictions (`langevin_uq.problem`)."""

import jax
import jax.numpy as jnp
import numpy as np
from blowup import INPUTS, Riccati

from langevin_uq.problem import predict_ensemble, predict_ensemble_finite
from langevin_uq.weights import make_partition


def test_an_overflowing_replica_scores_far_away_and_leaves_the_others_gradients_alone():
    partition = make_partition(Riccati(jnp.zeros(1)))
    inputs = INPUTS
    w = jnp.array([[0.1], [50.0]])  # the second blows up within the first interval
    assert not np.all(np.isfinite(predict_ensemble(partition, w, inputs)[1]))

    def loss(w):
        pred, bad = predict_ensemble_finite(partition, w, inputs, jnp.asarray(1.0))
        return jnp.sum(pred**2), bad

    (value, bad), grad = jax.value_and_grad(loss, has_aux=True)(w)
    assert int(bad) == 1 and np.isfinite(float(value))
    pred, _ = predict_ensemble_finite(partition, w, inputs, jnp.asarray(1.0))
    np.testing.assert_allclose(pred[1], 2e3)  # OVERFLOW_DISTANCE (1 + y_max)
    np.testing.assert_array_equal(grad[1], 0.0)
    alone = jax.grad(lambda w: jnp.sum(predict_ensemble(partition, w, inputs) ** 2))(w[:1])
    np.testing.assert_allclose(grad[0], alone[0], rtol=1e-6)
