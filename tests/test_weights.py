"""Flat weight vector, names and the full / BLL partitions (METHOD section 3)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from langevin_uq.errors import ConfigError
from langevin_uq.model import build_model
from langevin_uq.weights import make_partition, preset


def _preset(model, variant, submodels=("R", "Z")):
    stochastic, rest = preset(model, variant, submodels)
    return make_partition(model, stochastic=stochastic, rest=rest)


def _schlogl_like():
    return build_model(n_outputs=1, n_inputs=0, hidden_state=0, R_hidden=[16, 16],
                       R_activation="tanh", observation="identity", Z_hidden=[],
                       Z_activation="softplus", key=jr.key(0))  # fmt: skip


def test_names_follow_module_paths_and_ravel_order():
    part = make_partition(_schlogl_like())
    assert part.n_weights == 321 == part.n_stochastic  # the paper's Schloegl model
    assert part.names[0] == "R.layers.0.weight[0,0]"
    assert "R.layers.0.bias[15]" in part.names
    assert part.names[-1] == "R.layers.2.bias[0]"
    assert len(set(part.names)) == part.n_weights


def test_flatten_and_model_round_trip():
    model = _schlogl_like()
    part = make_partition(model)
    w = part.flatten(model)
    np.testing.assert_array_equal(part.flatten(part.model(w)), w)
    # Setting a named entry changes exactly that parameter.
    i = part.names.index("R.layers.2.bias[0]")
    assert float(part.model(w.at[i].set(3.0)).R.layers[2].bias[0]) == 3.0


@pytest.mark.parametrize("variant", ["bll-fixed", "bll-reopt"])
def test_bll_samples_the_last_layer(variant):
    part = _preset(_schlogl_like(), variant)
    sampled = [part.names[i] for i in part.stochastic_index]
    assert len(sampled) == 17 and all(n.startswith("R.layers.2.") for n in sampled)
    assert part.reoptimise_deterministic == (variant == "bll-reopt")
    w = jnp.arange(part.n_weights, dtype=jnp.float32)
    w_s, w_d = part.split(w)
    np.testing.assert_array_equal(part.join(w_s, w_d), w)
    assert part.stochastic_mask.sum() == 17
    # A batch of stochastic parts shares one w_D.
    batch = jnp.stack([w_s, -w_s, 2 * w_s])
    joined = part.join(batch, w_d)
    assert joined.shape == (3, part.n_weights)
    for row, w_s_row in zip(joined, batch, strict=True):
        np.testing.assert_array_equal(row, part.join(w_s_row, w_d))
    np.testing.assert_array_equal(part.split(joined)[1], jnp.broadcast_to(w_d, (3, len(w_d))))


def test_bll_with_observation_mlp_takes_both_last_layers():
    model = build_model(n_outputs=1, n_inputs=2, hidden_state=3, R_hidden=[4],
                        R_activation="tanh", observation="mlp", Z_hidden=[3],
                        Z_activation="softplus", key=jr.key(1))  # fmt: skip
    part = _preset(model, "bll-fixed")
    sampled = {part.names[i].split("[")[0] for i in part.stochastic_index}
    assert sampled == {"R.layers.1.weight", "R.layers.1.bias", "Z.layers.1.weight",
                       "Z.layers.1.bias"}  # fmt: skip
    only_z = _preset(model, "bll-fixed", ["Z"])
    assert only_z.n_stochastic == 4


def test_bad_variant_is_refused():
    with pytest.raises(ConfigError):
        _preset(_schlogl_like(), "half")


class _Kinetics(eqx.Module):
    """A small user model: rates, an initial state, and a constant."""

    log_k: jax.Array
    h0: jax.Array
    c: jax.Array

    def vector_field(self, t, h, x):
        return -jnp.exp(self.log_k) * h + self.c

    def initial_state(self, y0, x0):
        return self.h0


def _kinetics():
    return _Kinetics(jnp.array([0.1, -0.2]), jnp.array([1.0, 2.0]), jnp.array([0.0, 0.5]))


def test_user_model_partition_by_leaf_path_with_constants_and_noise():
    part = make_partition(_kinetics(), stochastic=["log_k", "log_sigma"], fixed=["c"], n_noise=2)
    assert part.names == ("log_k[0]", "log_k[1]", "h0[0]", "h0[1]", "log_sigma[0]",
                          "log_sigma[1]")  # fmt: skip
    assert part.stochastic_names == ("log_k[0]", "log_k[1]", "log_sigma[0]", "log_sigma[1]")
    w = part.flatten(_kinetics(), log_sigma=jnp.array([-1.0, -2.0]))
    np.testing.assert_array_equal(part.log_sigma(w), [-1.0, -2.0])
    np.testing.assert_array_equal(part.log_sigma(jnp.stack([w, w])), [[-1.0, -2.0]] * 2)
    model = part.model(w.at[0].set(0.7))
    assert float(model.log_k[0]) == pytest.approx(0.7) and float(model.c[1]) == 0.5
    t = jnp.linspace(0.0, 1.0, 5)
    y = part.predict(w, t, jnp.zeros((5, 0)), jnp.zeros(2))
    assert y.shape == (5, 2) and float(y[0, 1]) == 2.0  # starts at h0, not y0


def test_the_gauss_newton_guide_holds_a_learned_noise_at_its_mle():
    """``sample_noise=False`` (the Gauss-Newton guide linearises for one noise sd): ``"all"``
    samples every weight but ``log_sigma``; naming ``log_sigma`` is refused."""
    part = make_partition(_kinetics(), fixed=["c"], n_noise=2, sample_noise=False)
    assert part.stochastic_names == ("log_k[0]", "log_k[1]", "h0[0]", "h0[1]")
    with pytest.raises(ConfigError, match="holds the learned noise at its MLE"):
        make_partition(_kinetics(), stochastic=["log_k", "log_sigma"], fixed=["c"], n_noise=2,
                       sample_noise=False)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, words",
    [({"stochastic": ["log_kk"]}, "names no weight"),
     ({"fixed": ["d"]}, "names no array leaf"),
     ({"stochastic": ["c"], "fixed": ["c"]}, "model.fixed"),
     ({"fixed": ["log_k", "h0", "c"]}, "no weights"),
     ({"rest": "frozen"}, "partition.rest")],
)  # fmt: skip
def test_bad_selections_are_refused(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        make_partition(_kinetics(), **kwargs)


def test_a_leaf_called_log_sigma_is_refused_beside_a_learned_noise():
    class Noisy(eqx.Module):
        log_sigma: jax.Array

        def vector_field(self, t, h, x):
            return -h

    make_partition(Noisy(jnp.zeros(1)))  # fine without a learned noise
    with pytest.raises(ConfigError, match="log_sigma"):
        make_partition(Noisy(jnp.zeros(1)), n_noise=1)


def test_bll_preset_is_refused_for_a_user_model():
    with pytest.raises(ConfigError, match="preset of the built-in model"):
        preset(_kinetics(), "bll-fixed")
