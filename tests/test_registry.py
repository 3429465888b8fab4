"""The system registry (`langevin_uq.registry`) and the command line agree: every registered
simulator and demonstration is reachable, every option is offered and refused where it does not
apply, and the defaults the help text shows are the ones the simulators use."""

import inspect

import jax.random as jr
import numpy as np
import pytest
from test_cli import assert_refused

from langevin_uq import demos, registry
from langevin_uq.data import load_trajectories

SIMULATORS = registry.names("simulate")
DEMOS = registry.names("demo")
OPTIONS = {o.name: o for system in registry.SYSTEMS.values() for o in system.options}
FOREIGN = [
    (name, option)
    for name in SIMULATORS
    for option in OPTIONS.values()
    if option.name not in {o.name for o in registry.SYSTEMS[name].options}
]
SHORT = {"n_times": 3, "t_end": 0.1}
"""A short observation grid, which every simulator so far takes: the tests run in seconds."""


def test_registry_lists_every_system_of_the_contract():
    assert registry.names() == ("ou", "schlogl", "hyperelastic", "viscoelastic")
    assert set(SIMULATORS) >= {"ou", "schlogl"} and set(DEMOS) >= {"ou", "schlogl"}


def test_an_option_several_systems_take_means_the_same_to_each():
    for system in registry.SYSTEMS.values():
        assert len({o.name for o in system.options}) == len(system.options), system.name
        for option in system.options:
            first = OPTIONS[option.name]
            assert (option.help, option.type) == (first.help, first.type), option.name


@pytest.mark.parametrize("name", SIMULATORS)
def test_every_simulator_is_reachable_from_the_command_line(tmp_path, cli, name):
    out = tmp_path / f"{name}.npz"
    short = [x for k, v in SHORT.items() for x in (registry.Option(k, "", "").flag, v)]
    code, stdout, err = cli("simulate", name, "--out", out, "--n", 2, *short)
    assert code == 0, err
    assert f"wrote 2 {name} trajectories" in stdout
    assert load_trajectories(out).y.shape[:2] == (2, SHORT["n_times"])


@pytest.mark.parametrize(("name", "option"), FOREIGN, ids=[f"{n}{o.flag}" for n, o in FOREIGN])
def test_options_of_other_systems_are_refused(tmp_path, cli, name, option):
    out = tmp_path / "x.nc"
    line = assert_refused(cli("simulate", name, option.flag, 1, "--out", out), option.flag)
    assert line.endswith(f"does not apply to system {name!r}.")
    assert not out.exists()


@pytest.mark.parametrize("name", [n for n in registry.names() if n not in SIMULATORS])
def test_systems_without_a_simulator_are_refused(tmp_path, cli, name):
    out = tmp_path / "x.nc"
    line = assert_refused(cli("simulate", name, "--out", out), name, "not available yet")
    assert line.endswith(f"available: {', '.join(SIMULATORS)}.")
    assert not out.exists()


@pytest.mark.parametrize("name", [n for n in registry.names() if n not in DEMOS])
def test_systems_without_a_demo_are_refused(tmp_path, cli, name):
    out = tmp_path / "demo"
    line = assert_refused(cli("demo", name, "--out", out, "--quick"), name, "not available yet")
    assert line.endswith(f"available: {', '.join(DEMOS)}.")
    assert not out.exists()


def test_help_lists_every_system_and_option(cli):
    code, text, err = cli("simulate", "--help")
    assert code == 0, err
    assert " | ".join(registry.names()) in text
    for option in OPTIONS.values():
        assert option.flag in text, option.flag
    code, text, err = cli("demo", "--help")
    assert code == 0, err
    assert " | ".join(registry.names()) in text


@pytest.mark.parametrize("name", DEMOS)
def test_every_demo_is_an_exported_demonstration(name):
    run_demo = registry.SYSTEMS[name].load_demo()
    assert getattr(demos, run_demo.__name__) is run_demo
    parameters = inspect.signature(run_demo).parameters
    assert {"out", "quick", "seed", "progress", "echo", "resume"} <= set(parameters)


@pytest.mark.parametrize("name", SIMULATORS)
def test_help_defaults_are_the_simulators_defaults(name):
    """Each option set to the default its help shows changes nothing (same key, same data)."""
    system = registry.SYSTEMS[name]
    key = jr.key(0)
    for option in system.options:
        base = {k: v for k, v in SHORT.items() if k != option.name}
        value = option.type(option.default.split(", ")[-1])  # "copy number X(0), 250" -> 250
        implicit = system.simulate(1, key, **base)
        explicit = system.simulate(1, key, **base, **{option.name: value})
        for field in ("t", "y", "y0"):
            a, b = getattr(implicit, field), getattr(explicit, field)
            np.testing.assert_array_equal(a, b, err_msg=f"{option.name}: {field}")
