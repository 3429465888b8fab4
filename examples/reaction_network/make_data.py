"""Write ``data.npz``: one noisy trajectory of the reaction chain (20 times, 2 outputs).

True values: k = (1.0, 0.5, 0.3), a0 = 2.0, noise sd 0.05 on both outputs. The trajectory is
integrated with 50 Heun sub-steps per interval, finer than the fit's.
"""

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from langevin_uq.datamodel import solve

sys.path.insert(0, str(Path(__file__).parent))
from model import ReactionChain


def make(path: Path, seed: int = 0) -> None:
    t = np.linspace(0.0, 6.0, 20)
    truth = ReactionChain(k=(1.0, 0.5, 0.3), a0=2.0)
    y = np.asarray(solve(truth, jnp.asarray(t), jnp.zeros((20, 0)), jnp.zeros(2), substeps=50))
    y = y + 0.05 * np.random.default_rng(seed).standard_normal(y.shape)
    np.savez(path, t=t[None], y=y[None], group=np.zeros(1, int))


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data.npz"))
