"""The posterior score of a fitted run and the KSD diagnostics of its draws."""

import dataclasses
import json

import jax.random as jr
import numpy as np
import pytest
from conftest import tiny_config

from langevin_uq import sample_quality
from langevin_uq.data import Trajectories
from langevin_uq.errors import DataError
from langevin_uq.run import fit
from langevin_uq.rundir import read_metadata
from langevin_uq.sample_quality import posterior_score_fn, run_diagnostics


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, ou_data):
    """A tiny Gaussian-likelihood Langevin run (with the default 10 % validation split)."""
    run_dir = tmp_path_factory.mktemp("quality") / "run"
    config = tiny_config(likelihood={"kind": "gaussian"}, data={"scaling": "standardize"})
    return fit(ou_data, config, run_dir=run_dir), run_dir


def test_the_data_term_is_the_one_fit_built(fitted, ou_data):
    """The likelihood's automatic sigma (the MLE's RMS residual over the training split, in
    scaled units) equals the one `fit` recorded: same split, scaler and MLE predictions."""
    run, run_dir = fitted
    likelihood, inputs, arrays = sample_quality._data_term(run, ou_data)
    recorded = read_metadata(run_dir)["likelihood"]["sigma"]
    sigma = np.asarray(likelihood.sigma) * np.asarray(run.scaler.scale)
    np.testing.assert_allclose(sigma, recorded, rtol=1e-6)
    assert arrays.y.shape[0] == read_metadata(run_dir)["n_train"]
    assert inputs.n_groups == len(np.unique(ou_data.group))


def test_score_is_prior_plus_data_term_over_beta(fitted, ou_data):
    run, _ = fitted
    w_s = run.partition.split(run.w_mle)[0] + 0.1
    score = posterior_score_fn(run, ou_data)(w_s)
    assert score.shape == w_s.shape and score.dtype == w_s.dtype
    assert np.all(np.isfinite(score))
    # Prior mean = the MLE, scale 1: the prior's part is -(w_s - w_mle) = -0.1 per weight.
    # Twice the prior scale leaves a quarter of it; twice beta halves the data term's part.
    data_part = score + 0.1
    wider = dataclasses.replace(run, config=run.config.replace(prior={"scale": 2.0}))
    np.testing.assert_allclose(posterior_score_fn(wider, ou_data)(w_s), data_part - 0.025,
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    hotter = dataclasses.replace(run, config=run.config.replace(train={"beta": 2.0}))
    np.testing.assert_allclose(posterior_score_fn(hotter, ou_data)(w_s), data_part / 2 - 0.1,
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_run_diagnostics_is_json_and_reads_as_a_verdict(fitted, ou_data):
    run, _ = fitted
    out = run_diagnostics(run, ou_data, jr.key(0), n=64)
    assert json.loads(json.dumps(out)) == out
    assert out["n"] == 64 and out["dimension"] == run.partition.n_stochastic
    assert out["method"] == "ls"
    for name in ("ksd", "reference", "ratio", "z", "p", "dispersion", "dispersion_se"):
        assert np.isfinite(out[name]), name
    assert out["ratio"] == pytest.approx(out["ksd"] / out["reference"])
    assert out["verdict"] is None or out["verdict"].startswith("samples ")
    grid = out["discretisation"]  # the tiny run's 10 steps
    assert grid["steps"] == 10 and grid["draws"] == sample_quality.DISCRETISATION_DRAWS
    assert grid["mean_shift"] >= 0 and grid["sd_tolerance"] > 0


def test_no_density_no_ksd(fitted, ou_data):
    run, _ = fitted
    for changes in ({"likelihood": {"kind": "energy-score"}}, {"train": {"beta": 0.0}}):
        other = dataclasses.replace(run, config=run.config.replace(**changes))
        assert posterior_score_fn(other, ou_data) is None
        out = run_diagnostics(other, ou_data, jr.key(0))
        assert out["ksd"] is None and out["verdict"] is None and out["why"]
        assert out["discretisation"]["steps"] == 10  # the grid check needs no density
        assert json.loads(json.dumps(out)) == out


def test_data_with_other_outputs_are_refused(fitted, ou_data):
    run, _ = fitted
    d = ou_data
    two = Trajectories(d.t, np.concatenate([d.y] * 2, -1), d.x, np.concatenate([d.y0] * 2, -1),
                       d.group)  # fmt: skip
    with pytest.raises(DataError, match="outputs"):
        posterior_score_fn(run, two)
