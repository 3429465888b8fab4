"""Evaluations that must not turn a whole batch into NaN when one row of it overflows."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._types import Array, Bool


def finite_rows(fn: Callable, *args) -> tuple[Array, Bool[Array, " R"]]:
    """``fn(*args)`` (an array with one row per replica) with its non-finite rows set to zero,
    and which rows those were.

    The rows set to zero carry no gradient, and NaN that the pullback of their zero cotangent
    brings back (``0 x inf`` inside a model that overflowed) is cut to zero, so the other rows'
    gradients are exact. ``fn`` must be a module-level function (it is static).
    """
    return _finite_rows(args, fn)


def nonfinite_rows(out: Array) -> Bool[Array, " R"]:
    """Which rows (leading axis) of ``out`` hold a NaN or an infinity."""
    return ~jnp.all(jnp.isfinite(out).reshape(out.shape[0], -1), axis=1)


def _masked(out, bad):
    return jnp.where(bad.reshape((-1,) + (1,) * (out.ndim - 1)), 0.0, out).astype(out.dtype)


@eqx.filter_custom_vjp
def _finite_rows(args, fn):
    out = fn(*args)
    bad = nonfinite_rows(out)
    return _masked(out, bad), bad


@_finite_rows.def_fwd
def _finite_rows_fwd(perturbed, args, fn):
    dynamic, static = eqx.partition(args, eqx.is_inexact_array)
    out, pullback = jax.vjp(lambda d: fn(*eqx.combine(d, static)), dynamic)
    bad = nonfinite_rows(out)
    return (_masked(out, bad), bad), (pullback, bad)


@_finite_rows.def_bwd
def _finite_rows_bwd(residuals, grad_obj, perturbed, args, fn):
    pullback, bad = residuals
    (grads,) = pullback(_masked(grad_obj[0], bad))
    return jax.tree.map(lambda g: jnp.where(jnp.isfinite(g), g, 0.0), grads)
