"""What a data model is, and how the library integrates one (INTERFACE.md "Your own model").

Any Equinox module with these methods is a data model (METHOD section 2, Eq. 1, 24-25):

- ``vector_field(t, h, x) -> dh/dt``: ``t`` a scalar, ``h`` the state ``(n_h,)``, ``x`` the
  inputs at ``t`` (``(0,)`` when there are none);
- ``initial_state(y0, x0) -> h0`` (optional; default ``h0 = y0``);
- ``observe(h, x) -> y_hat`` (optional; default ``y_hat = h``).

Its weights are its inexact-array leaves. `solve` integrates any of them on the observation grid
with the explicit Heun scheme as one `lax.scan`. A model whose initial state is empty has no ODE:
it is the static map ``observe(h0, x(t))`` at every time.
"""

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._types import Array, Float
from .errors import ConfigError


def initial_state(model, y0: Float[Array, " ny"], x0: Float[Array, " nx"]) -> Float[Array, " nh"]:
    """The model's ``initial_state(y0, x0)``, or ``y0`` when it has none."""
    if hasattr(model, "initial_state"):
        return model.initial_state(y0, x0)
    return y0


def observe(model, h: Float[Array, " nh"], x: Float[Array, " nx"]) -> Float[Array, " ny"]:
    """The model's ``observe(h, x)``, or ``h`` when it has none."""
    if hasattr(model, "observe"):
        return model.observe(h, x)
    return h


def solve(
    model,
    t: Float[Array, " T"],
    x: Float[Array, "T nx"],
    y0: Float[Array, " ny"],
    substeps: int = 1,
) -> Float[Array, "T ny"]:
    """The model's outputs at the observation times ``t`` (Eq. 24-25).

    Heun's scheme with ``substeps`` steps per observation interval; the inputs are interpolated
    linearly inside an interval.
    """
    h0 = initial_state(model, y0, x[0])
    if h0.shape == (0,):  # no state: a static map of the inputs
        return jax.vmap(lambda xi: observe(model, h0, xi))(x)
    fractions = jnp.arange(substeps, dtype=t.dtype) / substeps

    def interval(h, inputs):
        t_a, t_b, x_a, x_b = inputs
        dt = (t_b - t_a) / substeps

        def heun(h, s):
            xa = x_a + s * (x_b - x_a)
            xb = x_a + (s + 1.0 / substeps) * (x_b - x_a)
            ta = t_a + s * (t_b - t_a)
            k1 = model.vector_field(ta, h, xa)
            k2 = model.vector_field(ta + dt, h + dt * k1, xb)
            return h + 0.5 * dt * (k1 + k2), None

        h, _ = jax.lax.scan(heun, h, fractions)
        return h, observe(model, h, x_b)

    _, ys = jax.lax.scan(interval, h0, (t[:-1], t[1:], x[:-1], x[1:]))
    return jnp.concatenate([observe(model, h0, x[0])[None], ys], axis=0)


# --------------------------------------------------------------------------- user modules


def load_model_class(spec: str, *, where: str = "model.module"):
    """The class (or factory) named by ``"FILE.py:NAME"`` or ``"package.module:NAME"``.

    A relative ``FILE.py`` must already be resolved (`resolve_spec`). Refuses a spec that is
    malformed, a file that is missing or does not import, and a name the module lacks, with a
    `ConfigError` naming the file and the problem.
    """
    location, name = split_spec(spec, where)
    if location.endswith(".py"):
        path = Path(location)
        if not path.is_file():
            raise ConfigError(f"{where}: the model file {path} does not exist")
        module_name = f"_langevin_uq_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
        try:
            loader.loader.exec_module(module)
        except Exception as err:  # any error in user code is a bad input
            sys.modules.pop(module_name, None)
            raise ConfigError(
                f"{where}: the model file {path} does not import: {type(err).__name__}: {err}"
            ) from None
    else:
        try:
            module = importlib.import_module(location)
        except Exception as err:
            raise ConfigError(
                f"{where}: the module {location!r} does not import: {type(err).__name__}: {err}"
            ) from None
    if not hasattr(module, name):
        raise ConfigError(f"{where}: {location} has no {name!r}")
    return getattr(module, name)


def resolve_spec(spec: str, base: Path) -> str:
    """``spec`` with a relative ``FILE.py`` made absolute against ``base`` (the config's folder)."""
    if not spec:
        return spec
    location, name = split_spec(spec, "model.module")
    if location.endswith(".py") and not Path(location).is_absolute():
        location = str((base / location).resolve())
    return f"{location}:{name}"


def split_spec(spec: str, where: str = "model.module") -> tuple[str, str]:
    """``(location, NAME)`` of a ``"FILE.py:NAME"`` or ``"package.module:NAME"`` spec; refuses
    any other form."""
    location, sep, name = spec.rpartition(":")
    if not sep or not location.strip() or not name.isidentifier():
        raise ConfigError(f"{where} = {spec!r} should read 'FILE.py:NAME' or 'package.module:NAME'")
    return location, name


def construct(factory, args: dict, key, *, where: str = "model.module"):
    """``factory(**args)``, with ``key=key`` when its signature takes one."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = dict(args)
    if "key" in params and "key" not in kwargs:
        kwargs["key"] = key
    try:
        model = factory(**kwargs)
    except Exception as err:
        raise ConfigError(
            f"{where}: building {getattr(factory, '__name__', factory)!r} with {args} failed: "
            f"{type(err).__name__}: {err}"
        ) from None
    return model


def check_data_model(model, n_outputs: int, n_inputs: int, dtype, *, where: str) -> None:
    """Refuse a module that is not a data model for data of these sizes.

    Evaluates ``initial_state``, ``vector_field`` and ``observe`` once at zeros-sized inputs and
    checks their shapes and that they are finite. ``where`` names the model in messages.
    """
    if not isinstance(model, eqx.Module):
        raise ConfigError(f"{where} is a {type(model).__name__}, not an Equinox module")
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    if not leaves:
        raise ConfigError(f"{where} has no array weights to fit")
    y0 = jnp.ones(n_outputs, dtype)
    x0 = jnp.zeros(n_inputs, dtype)
    try:
        h0 = jnp.asarray(initial_state(model, y0, x0))
    except Exception as err:
        raise ConfigError(
            f"{where}: initial_state(y0, x0) failed: {type(err).__name__}: {err}"
        ) from None
    if h0.ndim != 1:
        raise ConfigError(f"{where}: initial_state returned shape {h0.shape}; it must be (n_h,)")
    if h0.shape[0] > 0:
        if not hasattr(model, "vector_field"):
            raise ConfigError(f"{where} has no vector_field(t, h, x) method")
        try:
            dh = jnp.asarray(model.vector_field(jnp.asarray(0.0, dtype), h0, x0))
        except Exception as err:
            raise ConfigError(
                f"{where}: vector_field(t, h, x) failed: {type(err).__name__}: {err}"
            ) from None
        if dh.shape != h0.shape:
            raise ConfigError(
                f"{where}: vector_field returned shape {dh.shape} for a state of shape "
                f"{h0.shape}; it must return dh/dt of the state's shape"
            )
        _finite(dh, f"{where}: vector_field")
    try:
        y = jnp.asarray(observe(model, h0, x0))
    except Exception as err:
        raise ConfigError(f"{where}: observe(h, x) failed: {type(err).__name__}: {err}") from None
    if y.shape != (n_outputs,):
        raise ConfigError(
            f"{where}: observe returned shape {y.shape} but the data have {n_outputs} output(s)"
            + ("" if hasattr(model, "observe") else " (without observe, y_hat is the state)")
        )
    _finite(h0, f"{where}: initial_state")
    _finite(y, f"{where}: observe")


def _finite(a, what: str) -> None:
    if not bool(jnp.all(jnp.isfinite(a))):
        raise ConfigError(f"{what} returned non-finite values at the first data point")


def structure_digest(model) -> str:
    """SHA-256 of the model's class and the path, shape and dtype of each array leaf."""
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(model)[0]:
        if eqx.is_array(leaf):
            h.update(f"{jax.tree_util.keystr(path)}:{np.shape(leaf)}:{leaf.dtype};".encode())
    return h.hexdigest()


def source_digest(spec: str | None, model) -> str | None:
    """SHA-256 of the model's source file (``None`` when it cannot be read)."""
    try:
        if spec and spec.rpartition(":")[0].endswith(".py"):
            return hashlib.sha256(Path(spec.rpartition(":")[0]).read_bytes()).hexdigest()
        file = inspect.getsourcefile(type(model))
        return hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    except (OSError, TypeError):
        return None
