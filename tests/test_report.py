"""The run report's KSD lines: from the training data, from a run's ``ksd.json``, or absent."""

import shutil

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import tiny_config

from langevin_uq import checkpoint as ckpt
from langevin_uq.errors import DataError
from langevin_uq.report import write_report
from langevin_uq.run import fit, load_run
from langevin_uq.sample_quality import KSD_FILE, run_diagnostics
from langevin_uq.systems.ou import OUSystem, simulate_ou


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ou_data):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    fit(ou_data, tiny_config(likelihood={"kind": "gaussian"}, train={"diagnostics": True}),
        run_dir=run_dir)  # fmt: skip
    return run_dir


def test_report_with_training_data_has_the_ksd_and_its_verdict(run_dir, ou_data):
    summary = write_report(run_dir, data=ou_data)
    ksd = ckpt.read_json(run_dir / "report" / KSD_FILE)
    assert ksd["n"] == 512 and ksd["method"] == "ls"
    assert f"- KSD of 512 draws of {ksd['dimension']} stochastic weights: " in summary
    assert f"{ksd['ratio']:.3g}x the reference of exact Gaussian draws" in summary
    assert f"; Stein dispersion {ksd['dispersion']:.3g} +- " in summary
    verdict = ksd["verdict"] or "no disagreement between samples and posterior detected"
    assert f"- verdict: {verdict}\n" in summary
    assert (run_dir / "report" / "summary.md").read_text() == summary


def test_report_reads_the_runs_ksd_file_or_says_why_it_has_none(run_dir, ou_data, tmp_path):
    assert (run_dir / KSD_FILE).exists()  # fit writes it
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report", KSD_FILE))
    assert "- KSD: not computed (the report needs the run's training data" in write_report(copy)
    assert not (copy / "report" / KSD_FILE).exists()
    written = run_diagnostics(load_run(copy), ou_data, jr.key(1), n=16)
    ckpt.write_json(copy / KSD_FILE, written)
    summary = write_report(copy)
    assert "- KSD of 16 draws of" in summary and "- verdict: " in summary
    assert ckpt.read_json(copy / "report" / KSD_FILE) == written


def test_no_diagnostics_no_ksd_file(tmp_path, ou_data):
    fit(ou_data, tiny_config(train={"epochs": 2}), run_dir=tmp_path / "run")  # diagnostics off
    assert (tmp_path / "run" / "history.csv").exists()
    assert not (tmp_path / "run" / KSD_FILE).exists()
    assert "- KSD: not computed (the report needs the run's training data" in write_report(
        tmp_path / "run"
    )


def test_report_refuses_other_data_as_training_data(run_dir):
    other = simulate_ou(OUSystem(n=32, n_times=8), jr.key(1))
    with pytest.raises(DataError, match="differ from the data"):
        write_report(run_dir, data=other)


def test_report_of_an_energy_score_run_says_why_it_has_no_ksd(run_dir, tmp_path, ou_data):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report"))
    config = (copy / "config.toml").read_text()
    assert 'kind = "gaussian"' in config
    (copy / "config.toml").write_text(config.replace('kind = "gaussian"', 'kind = "energy-score"'))
    summary = write_report(copy, held_out=ou_data)
    assert "- KSD: none; likelihood.kind = 'energy-score' is a scoring rule" in summary
    assert ckpt.read_json(copy / "report" / KSD_FILE)["ksd"] is None
    # An aleatory likelihood: the held-out values' PIT against the predictive, and its plot.
    n_values = ou_data.y.size
    assert f"- PIT of {n_values} held-out values (pit.png): " in summary
    assert (copy / "report" / "pit.png").read_bytes()[:4] == b"\x89PNG"
    assert "PIT" not in write_report(run_dir, held_out=ou_data)  # gaussian: no noise in it


def test_pit_line_reads_the_outer_deciles():
    from langevin_uq.report import pit_line

    uniform = (jnp.arange(1000) + 0.5) / 1000
    assert "20 % in the outer deciles" in pit_line(np.asarray(uniform))
    assert pit_line(np.asarray(uniform)).endswith("(0.5)")
    narrow = np.concatenate([np.full(400, 0.01), np.full(600, 0.5)])
    assert pit_line(narrow).endswith("too narrow for the held-out data")
    assert pit_line(np.full(100, 0.5)).endswith("wider than the held-out data's spread")


def test_start_lines_caution_a_strained_gaussian_start():
    from langevin_uq.report import start_lines

    assert start_lines(None) == [] and start_lines({"rank": 2}) == []
    calm = start_lines({"rank": 2, "start_extra_precision": 0.0})
    assert calm == ["- start: Gaussian, rank 2 from the linearised data model, extra precision "
                    "0 (ELBO's choice) for the other directions"]  # fmt: skip
    strained = start_lines({"rank": 4, "start_extra_precision": 10.0})
    assert len(strained) == 2 and "at 0.3 of the prior's sd" in strained[1]
    assert 'drift_init = "gauss-newton"' in strained[1]
