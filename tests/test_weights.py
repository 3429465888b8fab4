"""Flat weight vector, names and the full / BLL partitions (METHOD section 3)."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from langevin_uq.errors import ConfigError
from langevin_uq.model import build_model
from langevin_uq.weights import make_partition


def _schlogl_like():
    return build_model(n_outputs=1, n_inputs=0, hidden_state=0, R_hidden=[16, 16],
                       R_activation="tanh", observation="identity", Z_hidden=[],
                       Z_activation="softplus", substeps=1, key=jr.key(0))  # fmt: skip


def test_names_follow_module_paths_and_ravel_order():
    part = make_partition(_schlogl_like(), "full")
    assert part.n_weights == 321 == part.n_stochastic  # the paper's Schloegl model
    assert part.names[0] == "R.layers.0.weight[0,0]"
    assert "R.layers.0.bias[15]" in part.names
    assert part.names[-1] == "R.layers.2.bias[0]"
    assert len(set(part.names)) == part.n_weights


def test_flatten_and_model_round_trip():
    model = _schlogl_like()
    part = make_partition(model, "full")
    w = part.flatten(model)
    np.testing.assert_array_equal(part.flatten(part.model(w)), w)
    # Setting a named entry changes exactly that parameter.
    i = part.names.index("R.layers.2.bias[0]")
    assert float(part.model(w.at[i].set(3.0)).R.layers[2].bias[0]) == 3.0


@pytest.mark.parametrize("variant", ["bll-fixed", "bll-reopt"])
def test_bll_samples_the_last_layer(variant):
    part = make_partition(_schlogl_like(), variant)
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
                        Z_activation="softplus", substeps=1, key=jr.key(1))  # fmt: skip
    part = make_partition(model, "bll-fixed")
    sampled = {part.names[i].split("[")[0] for i in part.stochastic_index}
    assert sampled == {"R.layers.1.weight", "R.layers.1.bias", "Z.layers.1.weight",
                       "Z.layers.1.bias"}  # fmt: skip
    only_z = make_partition(model, "bll-fixed", ["Z"])
    assert only_z.n_stochastic == 4


def test_bad_variant_is_refused():
    with pytest.raises(ConfigError):
        make_partition(_schlogl_like(), "half")
