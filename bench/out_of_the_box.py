"""Issue 16's table, re-run: what a new user meets with (nearly) default settings.

Each row fits one case and prints whether it completed, the loss and path KL averaged over the
first and last 20 epochs (the ELBO must go down), and, where an answer is known, the figure that
says whether it is right. Epochs are fewer than the defaults' 2000 so that the whole table runs
in well under an hour on 2 cores; ``--rows 1,4`` runs a subset.

    .venv/bin/python bench/out_of_the_box.py [--rows 1,2,...]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax.random as jr
import numpy as np
from _problem import relaxation_data

from langevin_uq.config import Config
from langevin_uq.demos import schlogl_config
from langevin_uq.errors import TrainingDivergedError
from langevin_uq.run import fit, sample_weights
from langevin_uq.rundir import read_history, read_ksd, read_metadata
from langevin_uq.systems.ou import OUSystem, ou_true_weights, simulate_ou
from langevin_uq.systems.schlogl import SchloglSystem, simulate_schlogl

NODE_VS_NUTS = Path(__file__).with_name("schlogl_node_vs_nuts.toml")


def _windows(run_dir: Path) -> str:
    rows = read_history(run_dir / "history.csv")
    if not rows:
        return "no epochs"
    loss = np.array([r[1] for r in rows])
    kl = np.array([r[3] for r in rows])
    k = min(20, len(rows))
    return (f"loss {loss[:k].mean():.5g} -> {loss[-k:].mean():.5g}, path KL "
            f"{kl[:k].mean():.4g} -> {kl[-k:].mean():.4g} ({len(rows)} epochs)")  # fmt: skip


def _run(label: str, data, config: Config, check=None) -> None:
    run_dir = Path(tempfile.mkdtemp()) / "run"
    t0 = time.perf_counter()
    try:
        run = fit(data, config, run_dir=run_dir)
        status = "completed"
    except TrainingDivergedError as err:
        run, status = None, f"DIVERGED: {err}"
    seconds = time.perf_counter() - t0
    start = read_metadata(run_dir).get("drift") or {}
    extra = start.get("start_extra_precision")
    line = f"{label}: {status} in {seconds:.0f} s; {_windows(run_dir)}"
    if extra is not None:
        line += f"; rank {start['rank']}, start extra precision {extra:g}"
    if (ksd := read_ksd(run_dir)) is not None and ksd.get("ksd") is not None:
        line += f"; KSD {ksd['ratio']:.3g}x reference, z {ksd['z']:.2f}, p {ksd['p']:.3g}"
        line += f", Stein dispersion {ksd['dispersion']:.3g} +- {ksd['dispersion_se']:.2g}"
        line += f"; verdict: {ksd['verdict']}" if ksd["verdict"] else ""
    if run is not None and check is not None:
        line += "; " + check(run)
    print(line, flush=True)


def _ou_law_check(system: OUSystem, key):
    truth = np.asarray(ou_true_weights(system, key), np.float64)

    def check(run):
        w = np.asarray(sample_weights(run, 4096, jr.key(9)), np.float64)
        ratio = w.std(0) / truth.std(0)
        corr = np.corrcoef(w.T)[0, 1] - np.corrcoef(truth.T)[0, 1]
        return f"sd ratio to the data's weights {np.round(ratio, 3)}, corr error {corr:+.3f}"

    return check


def main(rows: set[int], replicas: int | None = None, epochs: int | None = None) -> None:
    ou = simulate_ou(OUSystem(n=256), jr.key(0))
    short = {"epochs": 300}
    cases = {
        1: ("1 defaults, OU n=256", ou, Config().replace(train=short)),
        2: ("2 train.lr = 1e-3", ou, Config().replace(train={**short, "lr": 1e-3})),
        3: ("3 prior.scale = 0.1", ou, Config().replace(train=short, prior={"scale": 0.1})),
        4: ("4 energy score, 32 replicas x 20 steps", ou,
            Config().replace(likelihood={"kind": "energy-score"}, train=short,
                             sampler={"replicas": 32, "steps": 20})),
    }  # fmt: skip
    if rows & {5, 6}:
        schlogl = simulate_schlogl(SchloglSystem(n=512, n_times=51), jr.key(0))
        big = schlogl_config(quick=True).replace(
            model={"R_hidden": [27, 27]}, train={"epochs": 100}
        )
        paper = schlogl_config("marginal-mixture", quick=True).replace(
            prior={"mean": "zero"}, train={"epochs": 100}
        )
        cases[5] = ("5 1-27-27-1 NODE (838 weights), Schloegl demo settings", schlogl, big)
        cases[6] = ("6 Schloegl, paper's setting (mixture K=2, prior mean 0)", schlogl, paper)
    if rows & {7, 8, 12}:
        relax = relaxation_data()
        node = Config.load(NODE_VS_NUTS)
        # row 7 on a 1-4-4-1 NODE: with the guide's derivative held fixed it showed the same
        # worsening within 100 epochs (loss -16.9 -> 336, 16 minutes in all)
        cases[12] = ("12 33-weight NODE, Gauss-Newton start, training on", relax,
                     node.replace(model={"R_hidden": [4, 4]}, train={"epochs": 100}))  # fmt: skip
        cases[7] = ("7 321-weight NODE, Gauss-Newton start, training on", relax,
                    node.replace(train={"epochs": 60}))  # fmt: skip
        cases[8] = ("8 321-weight NODE, default (Laplace) start, training on", relax,
                    node.replace(sampler={"drift_init": "laplace", "final_dtau": "auto"},
                                 train={"epochs": 300}))  # fmt: skip
    if rows & {9, 10}:
        law = OUSystem(theta_mean=1.0, theta_sd=0.0, mu_mean=1.0, mu_sd=0.0, n=8, n_times=16,
                       t_end=3.0)  # fmt: skip
        noisy = simulate_ou(law, jr.key(4), noise_sd=0.1)
        base = Config().replace(data={"scaling": "none", "validation_fraction": 0.0},
                                model={"R_hidden": []},
                                likelihood={"kind": "gaussian", "sigma": 0.1})  # fmt: skip
        cases[9] = ("9 2-weight ODE, default config", noisy, base)
        cases[10] = (
            "10 2-weight ODE, Gauss-Newton start, training on",
            noisy,
            base.replace(sampler={"drift_init": "gauss-newton"}, train={"epochs": 200}),
        )
    if 11 in rows:
        slow = OUSystem(theta_mean=0.8)
        cases[11] = ("11 OU theta_bar = 0.8, energy score (OU demo settings)",
                     simulate_ou(slow, jr.key(0)),
                     Config().replace(data={"scaling": "none"}, model={"R_hidden": []},
                                      likelihood={"kind": "energy-score"},
                                      train={"epochs": 1500, "batch_trajectories": 256}),
                     _ou_law_check(slow, jr.key(0)))  # fmt: skip
    for number in sorted(rows):
        label, data, config, *check = cases[number]
        if replicas is not None:
            config = config.replace(sampler={"replicas": replicas})
            label += f" ({replicas} replicas)"
        if epochs is not None:
            config = config.replace(train={"epochs": epochs})
        _run(label, data, config, check[0] if check else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(map(str, range(1, 13))))
    parser.add_argument("--replicas", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    main({int(r) for r in args.rows.split(",")}, args.replicas, args.epochs)
    sys.exit(0)
