"""Issue 16, items 1-2: rows of `bench/out_of_the_box.py` with the plain and the
sticking-the-landing gradient of the path KL (`langevin_uq.sampler.LangevinSampler.simulate`,
``sticking``; the library's default is plain).

    .venv/bin/python bench/sticking_vs_plain.py --rows 1,9 [--estimators plain,sticking]
    .venv/bin/python bench/sticking_vs_plain.py --time   # one ELBO gradient, 321-weight NODE
"""

import argparse
import dataclasses

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import out_of_the_box
from _problem import problem_for
from _timing import best_time

from langevin_uq.config import Config
from langevin_uq.methods import ls, method_for
from langevin_uq.systems.ou import OUSystem, simulate_ou


def gradient_seconds() -> None:
    """Seconds of one ELBO value and gradient with each estimator, in one process: the default
    config (NODE 1-16-16-1, 321 weights; 256 replicas x 100 steps) on 256 OU trajectories."""
    config = Config().replace(train={"mle_epochs": 200})
    problem = problem_for(simulate_ou(OUSystem(n=256), jr.key(0)), config)
    method = method_for(config)
    params, record = method.init(problem)
    seconds = {}
    for sticking in (False, True):
        objective = dataclasses.replace(method.objective(problem, record), sticking=sticking)
        grad = eqx.filter_jit(eqx.filter_value_and_grad(
            lambda p, k, o=objective: o(p, k, jnp.asarray(0))[0]))  # fmt: skip
        seconds[sticking] = best_time(grad, params, jr.key(1))
    print(
        f"ELBO value and gradient: plain {seconds[False]:.3f} s, sticking {seconds[True]:.3f} s"
        f" ({seconds[True] / seconds[False]:.2f}x)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="")
    p.add_argument("--estimators", default="plain,sticking")
    p.add_argument("--time", action="store_true")
    a = p.parse_args()
    if a.time:
        gradient_seconds()
    if not a.rows:
        return
    objective = ls.LangevinMethod.objective
    for estimator in a.estimators.split(","):

        def chosen(self, problem, record, sticking=estimator == "sticking"):
            return dataclasses.replace(objective(self, problem, record), sticking=sticking)

        ls.LangevinMethod.objective = chosen
        print(f"gradient of the path KL: {estimator}", flush=True)
        out_of_the_box.main({int(r) for r in a.rows.split(",")})


if __name__ == "__main__":
    main()
