"""The Schloegl reaction system and its exact stochastic simulator (METHOD.md section 11; paper
Eq. 32-35).

One species X with copy number x reacts with two buffered species of fixed copy numbers A and B:

    A + 2X -> 3X   a1(x) = k1/2 A x (x - 1)
    3X -> A + 2X   a2(x) = k2/6 x (x - 1) (x - 2)
    B -> X         a3(x) = k3 B
    X -> B         a4(x) = k4 x

The propensities are the combinatorial (copy-number) forms, so a1 and a2 vanish when fewer than two
or three X molecules are present. With the classic constants below the rate equation
dx/dt = a1 - a2 + a3 - a4 has stable points near x = 85 and x = 565 and an unstable one near 250,
where every trajectory starts, so the data are bimodal. `simulate_schlogl` draws the trajectories
with Gillespie's exact stochastic simulation algorithm (SSA); only X is observed.
"""

import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from langevin_uq._types import Float, PRNGKeyArray
from langevin_uq.data import Trajectories, from_arrays
from langevin_uq.systems._checks import check_grid, observation_times
from langevin_uq.systems._checks import is_count as _is_count
from langevin_uq.systems._checks import require as _require

__all__ = ["SchloglSystem", "simulate_schlogl"]


class SchloglSystem(eqx.Module):
    """Configuration of the Schloegl data set (METHOD.md section 11, Eq. 32-35).

    The defaults are the classic bistable set of METHOD.md. The span ``t_end = 10`` is our choice
    (METHOD.md and the paper give none): the rate equation relaxes with rates of about 1.3 (lower
    point) and 2.5 (upper point) per unit time, and in simulations the fraction of trajectories in
    the upper mode and the mean of each mode stop changing by t = 8 (the lower mode settles last),
    so the last observations sample the settled bimodal law, with about half of the trajectories
    in each mode.

    Attributes
    ----------
    k1, k2, k3, k4 : float
        Rate constants of A + 2X -> 3X, 3X -> A + 2X, B -> X and X -> B; finite and >= 0, with
        k2 > 0 whenever k1 A > 0 (otherwise X grows without bound).
    a, b : float
        Fixed copy numbers of the buffered species A and B; finite and >= 0.
    x0 : int
        Initial copy number X(0) shared by all trajectories (known, so it is also ``y0``).
    n : int
        Number of trajectories N.
    n_times : int
        Number of observation times T, ``linspace(0, t_end, n_times)``.
    t_end : float
        Last observation time.
    """

    k1: float = 3e-7
    k2: float = 1e-4
    k3: float = 1e-3
    k4: float = 3.5
    a: float = 1e5
    b: float = 2e5
    x0: int = 250
    n: int = 1024
    n_times: int = 51
    t_end: float = 10.0

    def __check_init__(self) -> None:
        for name in ["k1", "k2", "k3", "k4", "a", "b"]:
            value = getattr(self, name)
            _require(
                isinstance(value, int | float | np.integer | np.floating)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0,
                f"{name} must be a finite number >= 0 but is {value!r}.",
            )
        _require(
            self.k2 > 0 or self.k1 * self.a == 0,
            f"k2 must be > 0 when k1 * a > 0, or X grows without bound, but is {self.k2!r}.",
        )
        _require(
            _is_count(self.x0) and self.x0 >= 0,
            f"x0 must be an integer >= 0 but is {self.x0!r}.",
        )
        check_grid(self.n, self.n_times, self.t_end)

    def times(self) -> Float[np.ndarray, " T"]:
        """Observation times ``linspace(0, t_end, n_times)`` as float32."""
        return observation_times(self.t_end, self.n_times)

    def propensities(self, x: Float[np.ndarray, "*batch"]) -> Float[np.ndarray, "*batch 4"]:
        """The propensities (a1, a2, a3, a4) of the four reactions at copy numbers `x`, in float64
        (Eq. 32-35; the module docstring lists them).
        """
        x = np.asarray(x, dtype=np.float64)
        a1 = 0.5 * self.k1 * self.a * x * (x - 1)
        a2 = self.k2 / 6 * x * (x - 1) * (x - 2)
        a3 = np.full_like(x, self.k3 * self.b)
        a4 = self.k4 * x
        return np.stack([a1, a2, a3, a4], axis=-1)


def _generator(key: PRNGKeyArray) -> np.random.Generator:
    """A NumPy generator seeded from `key` alone, so the same key gives the same data."""
    entropy = np.asarray(jr.bits(key, (4,), dtype=jnp.uint32), dtype=np.uint64)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy.tolist())))


def _ssa(system: SchloglSystem, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """Gillespie's direct method for all trajectories at once; returns X at `times`, (N, T).

    Each pass of the loop takes one event in every live trajectory: the next reaction, or, when
    the exponential waiting time would carry the trajectory past its next observation time, the
    observation itself. An observation records the current X, moves the clock to the observation
    time and fires nothing. By the memorylessness of the exponential waiting time, redrawing it
    from there leaves the law of the path unchanged, so the record is exactly the state holding at
    that time (the state after the last reaction before it). A trajectory leaves the loop once its
    last time is recorded.
    """
    n, n_times = system.n, times.size
    k3b, k4 = system.k3 * system.b, system.k4
    half_k1a, k2_6 = 0.5 * system.k1 * system.a, system.k2 / 6
    record = np.empty((n, n_times), dtype=np.float64)
    rows = np.arange(n)  # the trajectories still running
    x = np.full(n, float(system.x0))  # copy numbers, exact integers in float64
    t = np.zeros(n)
    next_obs = np.zeros(n, dtype=np.int64)  # index of each trajectory's next observation
    while rows.size:
        a1 = half_k1a * x * (x - 1)
        a12 = a1 + k2_6 * x * (x - 1) * (x - 2)
        a123 = a12 + k3b
        a0 = a123 + k4 * x
        wait = rng.standard_exponential(rows.size)
        u = a0 * rng.random(rows.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_next = np.where(a0 > 0, t + wait / a0, np.inf)
        t_obs = times[next_obs]
        observe = t_next > t_obs
        # Reactions 1 and 3 add one X, 2 and 4 remove one. At x = 0 only reaction 3 has a
        # propensity; the guard keeps a rounding of u up to a0 from firing reaction 4 there.
        gain = (u < a1) | ((u >= a12) & (u < a123)) | (x == 0)
        x = np.where(observe, x, np.where(gain, x + 1, x - 1))
        t = np.where(observe, t_obs, t_next)
        if observe.any():
            record[rows[observe], next_obs[observe]] = x[observe]
            next_obs += observe
            live = next_obs < n_times
            if not live.all():
                rows, x, t, next_obs = rows[live], x[live], t[live], next_obs[live]
    return record


def simulate_schlogl(system: SchloglSystem, key: PRNGKeyArray) -> Trajectories:
    """Simulate the Schloegl data set: N independent exact SSA trajectories of X (Eq. 32-35).

    The trajectories are simulated together in NumPy, the trajectory being the vector axis, with
    float64 clocks; the random numbers come from a NumPy generator seeded by `key` alone.

    Parameters
    ----------
    system : SchloglSystem
        The configuration.
    key : PRNGKeyArray
        The one key the whole data set is drawn from.

    Returns
    -------
    Trajectories
        float32 copy numbers X at ``system.times()``, y of shape (N, T, 1), with
        ``y[:, 0] = y0 = x0``, no inputs, and one condition group.
    """
    times = system.times()
    x = _ssa(system, _generator(key), times.astype(np.float64))
    y = x.astype(np.float32)[:, :, None]
    y0 = np.full((system.n, 1), system.x0, dtype=np.float32)
    return from_arrays(times, y, y0=y0)
