"""The Schloegl demonstration (issue 5): its outputs at a tiny size, and, with ``-m slow``, the
bimodality it must show at the quick size."""

import numpy as np
import pytest

from langevin_uq.config import Config
from langevin_uq.demos import final_time_modes, run_schlogl_demo, schlogl_config
from langevin_uq.demos import schlogl as schlogl_demo
from langevin_uq.systems.schlogl import SchloglSystem

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_final_time_modes_on_a_known_sample():
    data = np.array([80.0, 90.0, 100.0, 550.0, 570.0])
    row = final_time_modes(data, np.array([90.0, 560.0]), 470.0, data)
    assert row["low-mode fraction"] == pytest.approx(0.6)
    assert (row["low mean"], row["high mean"]) == (90.0, 560.0)
    assert row["low sd"] == pytest.approx(np.std([80.0, 90.0, 100.0]))
    assert row["W1 final / gap"] == 0.0
    one_mode = final_time_modes(np.array([85.0, 95.0]), np.array([90.0, 560.0]), 470.0, data)
    assert one_mode["low-mode fraction"] == 1.0 and np.isnan(one_mode["high mean"])


@pytest.mark.parametrize("steps", [25, 50, 100, 200])
def test_schlogl_config_keeps_the_first_step_stable(steps):
    config = schlogl_config(steps=steps)
    s = config.sampler
    assert isinstance(config, Config) and s.steps * s.dtau == pytest.approx(4.0)
    assert s.final_dtau == "auto"


def test_schlogl_demo_writes_every_figure_and_table(tmp_path, monkeypatch):
    def short(*args, **kwargs):  # the pipeline, not the fit's quality: few epochs and samples
        config = schlogl_config(*args, **kwargs)
        return config.replace(train={"epochs": 20, "mle_epochs": 100, "diagnostics": False},
                              sampler={"posterior_samples": 64, "anneal_epochs": 5})  # fmt: skip

    monkeypatch.setattr(schlogl_demo, "schlogl_config", short)  # where the demo looks it up
    system = SchloglSystem(n=24, n_times=6, t_end=4.0)
    result = run_schlogl_demo(tmp_path, quick=True, progress=False, echo=lambda _: None,
                              system=system, grid=((8, 64), (50,)))  # fmt: skip
    for name in ("density_over_time.png", "mixture_summaries.png", "convergence.png",
                 "distance_correlation.png"):  # fmt: skip
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
    table = (tmp_path / "schlogl_table.md").read_text()
    for text in (
        "LS energy-score",
        "MF-BBVI energy-score",
        "| 8 replicas",
        "64 replicas",
        "Energy score: per time (likelihood.marginal = true)",
    ):
        assert text in table, text
    for run in ("ls-energy-score", "bbvi-meanfield-energy-score", "convergence/R8-S50"):
        assert (tmp_path / run / "samples.npz").is_file(), run
    assert np.isfinite(result["convergence"]).all()
    # The 64 x 50 cell is the LS fit itself (quick size), not a second fit.
    ls_w1 = result["rows"]["LS energy-score"]["W1 mean over time"]
    assert result["convergence"][1, 0] == ls_w1
    assert not (tmp_path / "convergence/R64-S50").exists()
    rows = result["rows"]
    assert rows["data"]["W1 final / gap"] == 0.0
    assert 0.0 <= rows["LS energy-score"]["low-mode fraction"] <= 1.0

    # Resumed: finished fits are loaded, not fitted again; a cell killed before its first
    # checkpoint is fitted from the start. Seeded, so every number comes back the same.
    (tmp_path / "convergence/R8-S50/checkpoint.eqx").unlink()
    ls_checkpoint = tmp_path / "ls-energy-score" / "checkpoint.eqx"
    written = ls_checkpoint.stat().st_mtime_ns
    again = run_schlogl_demo(tmp_path, quick=True, progress=False, echo=lambda _: None,
                             system=system, grid=((8, 64), (50,)), resume=True)  # fmt: skip
    np.testing.assert_array_equal(again["convergence"], result["convergence"])
    for name, row in rows.items():
        same = {k: v for k, v in row.items() if k != "fit seconds"}
        np.testing.assert_equal(
            {k: v for k, v in again["rows"][name].items() if k != "fit seconds"}, same
        )
    assert ls_checkpoint.stat().st_mtime_ns == written
    assert again["rows"]["LS energy-score"]["fit seconds"] > 0


@pytest.mark.slow
def test_schlogl_ls_is_bimodal_like_the_data(tmp_path):
    """Issue 5, item 1, at the quick size (128 training trajectories, 300 epochs)."""
    result = run_schlogl_demo(tmp_path, quick=True, progress=False, echo=lambda _: None,
                              grid=((16,), (25,)))  # fmt: skip
    data, ls = result["rows"]["data"], result["rows"]["LS energy-score"]
    assert abs(ls["low-mode fraction"] - data["low-mode fraction"]) < 0.1
    assert ls["W1 final / gap"] < 0.25
    assert ls["low sd"] < ls["high sd"]
