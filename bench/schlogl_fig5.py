"""Issue 17, item 4: the paper's Fig. 5 and mode table for finished Schloegl fits.

Loads each run directory (`langevin_uq.run.load_run`), draws its posterior samples and
predicts the demo's held-out data as `langevin_uq.demos.schlogl` does (same seed, same keys),
then writes Fig. 5 (`langevin_uq.demos.schlogl.plot_fig5`) and a Markdown table of the
final-time modes (`final_time_modes`) under ``--out``. The fits come from
``bench/schlogl_mode_fits.py --out DIR`` or from a demo's output folder.

    .venv/bin/python bench/schlogl_fig5.py --full --seed 0 --out docs/x \\
        "LS=/tmp/ls" "MF-BBVI=/tmp/mf" "BBVI-full=/tmp/full"
"""

import argparse
from pathlib import Path

import equinox as eqx
import numpy as np

from langevin_uq import metrics
from langevin_uq._atomic import write_text_atomic
from langevin_uq.demos import final_time_modes
from langevin_uq.demos._common import markdown_table
from langevin_uq.demos.schlogl import plot_fig5
from langevin_uq.report import predict_per_group
from langevin_uq.run import load_run, sample_weights
from langevin_uq.seeding import stream
from langevin_uq.systems.schlogl import SchloglSystem, simulate_schlogl


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    a = p.parse_args()
    system = SchloglSystem(n=256) if a.full else SchloglSystem(n=128, n_times=26)
    held_out = simulate_schlogl(eqx.tree_at(lambda s: s.n, system, 1024 if a.full else 512),
                                stream(a.seed, "demo/held-out"))  # fmt: skip
    t, y_data = held_out.t[0], held_out.y[:, :, 0]
    centers = metrics.mixture_summary(y_data[:, -1], 2, seed=a.seed)["mean"]
    gap = float(centers[1] - centers[0])
    panels = {"data": y_data}
    rows = {"data": final_time_modes(y_data[:, -1], centers, gap, y_data[:, -1])}
    for spec in a.runs:
        name, run_dir = spec.split("=", 1)
        run = load_run(Path(run_dir))
        w = np.asarray(sample_weights(run, run.config.sampler.posterior_samples,
                                      stream(a.seed, "demo/samples")))  # fmt: skip
        pred = predict_per_group(run, held_out, w)[0][:, 0, :, 0]
        panels[name] = pred
        rows[name] = final_time_modes(pred[:, -1], centers, gap, y_data[:, -1])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_fig5(t, panels, out, a.seed)
    table = (f"Final time t = {t[-1]:g}: modes by nearest data-mode mean ({centers[0]:.1f}, "
             f"{centers[1]:.1f}; gap {gap:.1f}); W1 in copy numbers.\n\n"
             + markdown_table("source", rows))  # fmt: skip
    write_text_atomic(out / "modes_table.md", table)
    print(table)


if __name__ == "__main__":
    main()
