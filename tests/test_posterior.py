import jax.random as jr
import numpy as np
import pytest

from langevin_uq.errors import SupportWarning, TrainingDivergedError
from langevin_uq.posterior import AbstractPosterior, draw_in_support


class HalfSupported(AbstractPosterior):
    """N(0, 1) in 1-D whose support (as a draw would check it) ends at ``edge``."""

    edge: float

    def draw(self, key, n):
        return jr.normal(key, (n, 1))

    def describe(self):
        return "a standard normal cut at its edge"

    def outside_support(self, w_s):
        return w_s[:, 0] > self.edge


def test_draws_outside_the_support_are_drawn_again_and_the_rest_kept():
    posterior, key, n = HalfSupported(2.6), jr.key(3), 4000  # P(w > 2.6) = 0.0047
    plain = np.asarray(posterior.draw(key, n))
    with pytest.warns(SupportWarning, match=r"of 4000 posterior draws"):
        w = np.asarray(draw_in_support(posterior, key, n))
    outside = plain[:, 0] > 2.6
    assert 5 <= outside.sum() <= 40  # 19 expected; so the test can see a redraw
    assert w.max() <= 2.6
    np.testing.assert_array_equal(w[~outside], plain[~outside])


def test_no_draw_outside_the_support_changes_nothing():
    posterior, key = HalfSupported(np.inf), jr.key(0)
    np.testing.assert_array_equal(draw_in_support(posterior, key, 64), posterior.draw(key, 64))


def test_a_sampler_with_much_mass_outside_the_support_is_refused():
    with pytest.raises(TrainingDivergedError, match="more than 1%"):
        draw_in_support(HalfSupported(1.0), jr.key(0), 1000)  # 16 % outside
