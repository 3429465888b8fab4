"""Issue 16, must-show 3: the 321-weight NODE of `schlogl_node_vs_nuts.toml` against NUTS.

Fits NUTS once (its draws are kept in ``bench/out/node_nuts.npz``; delete it to re-run), then
the Langevin sampler from the default (Laplace) start, untrained and after ``--epochs`` epochs.
For each it prints the per-weight sd ratio to NUTS (median, 10-90 % range, fraction in
[0.8, 1.25]), the ELBO and path KL of the last 20 epochs, the KSD ratio and the predictive W1
to NUTS on the held-out times; and the amortised draws per second against NUTS's minimum bulk
ESS per second of sampling (compilation excluded for both).

    .venv/bin/python bench/node_vs_nuts.py [--epochs 300] [--start gauss-newton] [--replicas N]

The Gauss-Newton guide solves the data model at every step of every draw (not amortised): its
draws-per-second line says so.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
from _problem import nuts_agreement, relaxation_data

from langevin_uq.config import Config
from langevin_uq.diagnostics import ksd_report, verdict
from langevin_uq.run import fit, predict, sample_weights
from langevin_uq.rundir import read_history, read_metadata
from langevin_uq.sample_quality import posterior_score_fn

HERE = Path(__file__).parent
CONFIG = HERE / "schlogl_node_vs_nuts.toml"
CACHE = HERE / "out" / "node_nuts.npz"


def _nuts(data, config: Config) -> dict:
    if CACHE.exists():
        return dict(np.load(CACHE))
    run = fit(data, config.replace(method={"kind": "nuts"}))
    d = run.diagnostics
    w = np.asarray(sample_weights(run, 10_000, jr.key(1)))
    pred = np.asarray(predict(run, data, w[:2000]))
    out = {"w": w, "pred": pred, "ess_per_second": d["ess_per_second_min"],
           "ess_min": d["ess_min"], "divergences": d["divergences"]}  # fmt: skip
    CACHE.parent.mkdir(exist_ok=True)
    np.savez(CACHE, **out)
    return out


def _report(label: str, run, run_dir: Path, data, nuts: dict) -> None:
    w = np.asarray(sample_weights(run, 4000, jr.key(1)))
    agree = nuts_agreement(run, data, w, nuts)
    ratio, inside, w1, spread = agree["ratio"], agree["inside"], agree["w1"], agree["spread"]
    rows = read_history(run_dir / "history.csv")
    tail = (f"loss {np.mean([r[1] for r in rows[-20:]]):.5g}, path KL "
            f"{np.mean([r[3] for r in rows[-20:]]):.4g}" if rows else "untrained")  # fmt: skip
    ksd = read_metadata(run_dir)
    q = json.loads((run_dir / "ksd.json").read_text())
    grid = q["discretisation"]
    quality = (f"KSD ratio {q['ratio']:.3g}, z {q['z']:.3g}, Stein dispersion "
               f"{q['dispersion']:.3g} +- {q['dispersion_se']:.2g}; grid check: mean shift "
               f"{grid['mean_shift']:.3g} sds (tol {grid['mean_tolerance']:.3g}), log sd change "
               f"{grid['sd_change']:.3g} (tol {grid['sd_tolerance']:.3g})")  # fmt: skip
    extra = (ksd.get("drift") or {}).get("start_extra_precision")
    print(f"{label}: sd ratio median {np.median(ratio):.3f} (10-90 %: "
          f"{np.quantile(ratio, 0.1):.3f}-{np.quantile(ratio, 0.9):.3f}), "
          f"{100 * inside:.0f} % in [0.8, 1.25]; mean shift "
          f"{np.max(np.abs(w.mean(0) - nuts['w'].mean(0)) / nuts['w'].std(0)):.2f} NUTS sds (max); "
          f"{tail}; predictive W1 to NUTS {w1:.4g} (NUTS spread {spread:.4g}); "
          f"start extra precision {extra}; {quality}", flush=True)  # fmt: skip


def main(epochs: int, start: str, replicas: int | None = None) -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    relax = relaxation_data()
    config = Config.load(CONFIG)
    t0 = time.perf_counter()
    nuts = _nuts(relax, config)
    print(
        f"NUTS: ESS min {float(nuts['ess_min']):.0f}, ESS/s {float(nuts['ess_per_second']):.2f}, "
        f"{int(nuts['divergences'])} divergences ({time.perf_counter() - t0:.0f} s incl. cache)"
    )
    ls = config.replace(sampler={"drift_init": start, "final_dtau": "auto"})
    if replicas is not None:
        ls = ls.replace(sampler={"replicas": replicas})
    for label, n in (("untrained", 0), (f"{epochs} epochs", epochs))[: 2 if epochs else 1]:
        run_dir = Path(tempfile.mkdtemp()) / "run"
        t0 = time.perf_counter()
        run = fit(relax, ls.replace(train={"epochs": n}), run_dir=run_dir)
        print(f"LS {label}, {start} start: fit {time.perf_counter() - t0:.0f} s", flush=True)
        _report(f"LS {label}, {start} start", run, run_dir, relax, nuts)
    # NUTS's own draws read by the same KSD (chain draws: its z overstates, run_diagnostics)
    mask = np.asarray(run.partition.stochastic_mask)
    own = ksd_report(nuts["w"][:512, mask], posterior_score_fn(run, relax), jr.key(4))
    print(f"NUTS's draws: KSD ratio {own['ratio']:.3g}, z {own['z']:.3g}, Stein dispersion "
          f"{own['dispersion']:.3g} +- {own['dispersion_se']:.2g}; "
          f"verdict: {verdict(own)}")  # fmt: skip
    # The guide's draws solve the data model (and its Jacobian) at every step: fewer, and
    # labelled as not amortised.
    guided = start == "gauss-newton"
    n, repeats = (1000, 2) if guided else (4000, 5)
    sample_weights(run, n, jr.key(2)).block_until_ready()  # compiles
    t0 = time.perf_counter()
    for i in range(repeats):
        sample_weights(run, n, jr.key(3 + i)).block_until_ready()
    per_second = repeats * n / (time.perf_counter() - t0)
    ess = float(nuts["ess_per_second"])
    kind = "guided draws/s (not amortised)" if guided else "amortised draws/s"
    print(f"{kind} {per_second:.0f} against NUTS min bulk ESS/s {ess:.2f}: {per_second / ess:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--start", default="laplace", choices=["laplace", "gauss-newton"])
    parser.add_argument("--replicas", type=int, default=None)
    args = parser.parse_args()
    main(args.epochs, args.start, args.replicas)
