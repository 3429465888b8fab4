"""Issue 17, item 5: the OU demo's marginal-mixture row under the corrected Eq. 21.

With one mode (K = 1) the correction changes nothing: the mode's mean is the overall mean. The
row is fitted with the demo's configuration (`langevin_uq.demos.ou_config`) and
``likelihood.time_reduction`` "sum" and "mean", and the sampled weights' sds are compared with
the analytic law of the data-generating weights (App. C; the paper: LS sd(w1) as theory,
sd(w2) within 7 %).

    .venv/bin/python bench/ou_mixture_rows.py [seed]
"""

import sys
import time

import jax.random as jr
import numpy as np

from langevin_uq.demos import ou_config
from langevin_uq.run import fit, sample_weights
from langevin_uq.seeding import stream
from langevin_uq.systems.ou import OUSystem, OUWeightLaw, simulate_ou


def main(seed: int) -> None:
    system = OUSystem()
    law = OUWeightLaw.from_system(system)
    data = simulate_ou(system, stream(seed, "demo/data"))
    sd_true = np.asarray(law.sd())
    print(f"theory: sd {np.round(sd_true, 4)}, corr {float(np.asarray(law.corr())[0, 1]):+.3f}")
    for reduction in ("sum", "mean"):
        t0 = time.perf_counter()
        config = ou_config("marginal-mixture", seed=seed).replace(
            likelihood={"time_reduction": reduction}
        )
        run = fit(data, config)
        w = np.asarray(sample_weights(run, 4096, jr.key(1)), np.float64)
        print(f"seed {seed}, {reduction}: sd {np.round(w.std(0), 4)}, ratio to theory "
              f"{np.round(w.std(0) / sd_true, 3)}, mean {np.round(w.mean(0), 4)}, corr "
              f"{np.corrcoef(w.T)[0, 1]:+.3f} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
