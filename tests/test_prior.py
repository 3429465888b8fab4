"""The OU prior per weight: tables of leaf paths (INTERFACE.md "Which weights are sampled, and
their prior")."""

import numpy as np
import pytest

from langevin_uq.config import PriorOptions
from langevin_uq.errors import ConfigError
from langevin_uq.prior import per_weight, prior_vectors

NAMES = ["theta[0]", "theta[1]", "R.layers.0.weight[0,0]", "R.layers.0.weight[1,0]",
         "R.layers.0.bias[0]", "R.layers.1.weight[0,0]", "log_sigma[0]"]  # fmt: skip


def test_longest_match_wins_and_lists_follow_the_leaf_shape():
    table = {"R": 0.1, "R.layers.0": 0.2, "R.layers.0.weight": [[0.3], [0.4]], "theta": [1, 2]}
    values = per_weight(NAMES, table, np.full(len(NAMES), 9.0), "prior.scale")
    np.testing.assert_array_equal(values, [1, 2, 0.3, 0.4, 0.2, 0.1, 9.0])


@pytest.mark.parametrize(
    "table, fragment",
    [({"thetta": 1.0}, "'thetta' matches no weight"),
     ({"R.layers": [1.0, 2.0]}, "use a number for a prefix"),
     ({"theta": [1.0, 2.0, 3.0]}, "shape (3,)"),
     ({"R.lay": 1.0}, "matches no weight")],
)  # fmt: skip
def test_entries_that_match_nothing_or_have_the_wrong_shape_are_refused(table, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        per_weight(NAMES, table, np.zeros(len(NAMES)), "prior.scale")


def test_prior_vectors_defaults_and_tables():
    w_mle = np.arange(len(NAMES), dtype=float)
    mean, scale = prior_vectors(NAMES, w_mle, PriorOptions())
    np.testing.assert_array_equal(mean, w_mle)
    np.testing.assert_array_equal(scale, np.ones(len(NAMES)))
    options = PriorOptions(mean={"theta": 0.5}, scale={"log_sigma": 0.2}, default_mean="zero",
                           default_scale=3.0)  # fmt: skip
    mean, scale = prior_vectors(NAMES, w_mle, options)
    np.testing.assert_array_equal(mean, [0.5, 0.5, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(scale, [3, 3, 3, 3, 3, 3, 0.2])
    mean, _ = prior_vectors(NAMES, w_mle, PriorOptions(mean="zero"))
    np.testing.assert_array_equal(mean, np.zeros(len(NAMES)))
