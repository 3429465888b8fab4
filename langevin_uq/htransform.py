"""Doob h-transforms of the OU prior towards an approximate likelihood: the drift's start.

The drift correction that turns the prior SDE (METHOD section 5, preconditioned as in
`langevin_uq.prior`) into one whose law at ``T`` is prior times ``L(w_T)`` is, in prior units
``u``, ``g = 2 grad_u log h`` with ``h(u, tau) = E[L(u_T) | u_tau = u]``. Given ``u_tau = u`` the
prior puts ``u_T`` at ``N(a u, v I)`` with ``a = exp(-(T - tau))`` and ``v = 1 - a^2``, the same
for every weight. ``h`` is intractable for a neural ODE; each object here is ``h`` (or what
builds it) of an approximate likelihood for which it is Gaussian.

* `GaussianStart`: the Gauss-Newton (Laplace) approximation of the data term at the MLE, in
  prior units: ``1/2 (u - c)^T Lambda (u - c)`` with ``Lambda = (J S)^T D (J S)``, ``J`` the
  Jacobian of the predictions at the MLE, ``S`` the prior scales and ``D`` the likelihood's
  curvature in each prediction (`gaussian_start`). Its top eigenvectors are the directions the
  data inform; `langevin_uq.sampler.GaussianTilt` is its closed-form h-transform, trained on.
* `GaussNewtonTransform`: the data model linearised, for each replica, at a point ``x``,
  ``y_hat(u_T) ~ y_hat(x) + J_u (u_T - x)``, under a Gaussian likelihood with precisions ``D``:

      g(u, tau) = 2 a J_u^T (D^-1 + v J_u J_u^T)^-1 (y_bar - y_hat(x) - J_u (a u - x)).

  With ``x = a u`` this is the Gauss-Newton h-transform; each iteration moves ``x`` to the mean
  of ``u_T`` given the data under the model linearised at the current ``x`` (the iterated
  extended Kalman update). The drift is ``2 a (m - a u) / v`` with ``m`` that mean; ``m - a u``
  is held within `NEWTON_LIMIT` sds of ``u_T`` given ``u`` (``sqrt(v)``) per weight, in every
  iteration and in the drift. Near ``T`` a replica within 3 posterior sds of the posterior's
  mean does not reach the bound; one whose predictions miss the data by many noise sds would
  otherwise be linearised, or pushed, where the model overflows (the reaction network of
  ``examples/``, 512 replicas: without the bound one reached ``|u| ~ 1e27`` at ``T - tau =
  0.93``; with it on the iterations only, one ran away at 0.15; with both, none). Each step,
  the iterations' and the drift's, is also damped: the longest of `STEP_FRACTIONS` that does not
  raise the objective the mean minimises (misfit plus ``|m - a u|^2 / 2v``), none if all do. A
  linearisation far from the data proposes steps that raise it; taken whole, they carried 5 of
  2000 replicas on the reaction network to ``log k ~ 2.5`` (solver unstable, predictions up to
  1e37, sd ratios to NUTS 2.7-4.6); damped, none (sd ratios 0.92-1.00 on 2000 draws), and 3 of
  1000 stop in a local basin of the misfit (``k_1``, ``k_2`` swapped; misfit 200 against 21).
  It follows the posterior's curvature from replica to replica at the cost of ``iterations +
  1`` Jacobians of the predictions per replica and step. On the NODE of issue 3, untrained, the
  predictive W1 to NUTS's was 0.107 of the data's spread with no iteration and 0.062 with one.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._finite import finite_rows, nonfinite_rows
from ._types import Array, Bool, Float, Int
from .prior import OUPrior
from .problem import GroupInputs, group_means, predict_ensemble, predict_groups
from .weights import WeightPartition


class GaussianStart(eqx.Module):
    """A Gaussian approximation of the data term in prior units, split for a linear-cost drift.

    ``Lambda = Q diag(lam) Q^T + diag(diag)`` approximates the data term's curvature: ``Q``
    ``(ns, r)`` holds the ``r`` most informed directions, ``diag`` the rest of the curvature's
    diagonal. ``centre`` is the MLE in prior units, where the data term is taken to be minimal.

    Attributes:
        centre: ``(ns,)``; eigvecs: ``Q`` ``(ns, r)``; eigvals: ``lam`` ``(r,)``; diag: ``(ns,)``;
        max_precision: the largest eigenvalue of ``Lambda`` (sets the last pseudo-time step).
    """

    centre: Float[Array, " ns"]
    eigvecs: Float[Array, "ns r"]
    eigvals: Float[Array, " r"]
    diag: Float[Array, " ns"]
    max_precision: float = eqx.field(static=True, default=0.0)

    def posterior_sd(self) -> Float[Array, " ns"]:
        """``1 / sqrt(1 + diag(Lambda))``: the Gaussian posterior's sd per weight given the rest."""
        full = self.diag + (self.eigvecs**2) @ self.eigvals
        return 1 / jnp.sqrt(1 + full)

    @classmethod
    def placeholder(cls, n: int, rank: int, dtype) -> "GaussianStart":
        """Arrays of the right shapes: a skeleton for loading a checkpoint into."""
        eye = jnp.eye(n, rank, dtype=dtype)
        return cls(jnp.zeros(n, dtype), eye, jnp.ones(rank, dtype), jnp.zeros(n, dtype))


def choose_rank(eigvals: Float[np.ndarray, " k"], n: int, max_rank: int) -> int:
    """How many directions the drift treats jointly: those where the data's precision exceeds
    the prior's (eigenvalue >= 1 in prior units: the data shrink the variance by more than
    half), at least 2 (or ``n``), at most ``max_rank``."""
    informed = int(np.sum(np.asarray(eigvals) >= 1.0))
    return int(min(n, max(2, min(informed, max_rank))))


def prediction_jacobian(
    partition: WeightPartition, w_s: Float[Array, " ns"], w_d: Float[Array, " nd"],
    inputs: GroupInputs,
) -> Float[np.ndarray, "P ns"]:  # fmt: skip
    """The Jacobian of every group's predictions (flattened, ``P = G T ny``) in ``w_S``."""

    def predict(x):
        return predict_groups(partition, partition.join(x, w_d), inputs).ravel()

    n_pred = int(np.prod(predict_groups(partition, partition.join(w_s, w_d), inputs).shape))
    if n_pred <= w_s.shape[0]:
        return np.asarray(jax.jit(jax.jacrev(predict))(w_s))
    return np.asarray(jax.jit(jax.jacfwd(predict))(w_s))


NEWTON_LIMIT = 3.0
"""Largest Gauss-Newton step of the start's centre along any informed direction, in that
direction's posterior sds: a longer step leaves the region where the linearisation holds
(measured on a 321-weight NODE fitted to OU data: steps of up to 3 prior sds raised the first
epoch's loss from 8.1e3 to 6e4)."""


STEP_FRACTIONS = (1.0, 0.5, 0.25)
"""The fractions of a Gauss-Newton step of `GaussNewtonTransform` tried, longest first."""


def gaussian_start(
    jacobian: Float[np.ndarray, "P ns"],
    precision: Float[np.ndarray, " P"],
    centre: Float[Array, " ns"],
    scale: Float[Array, " ns"],
    max_rank: int,
    residual: Float[np.ndarray, " P"] | None = None,
) -> GaussianStart:
    """The Gauss-Newton approximation ``Lambda = (J S)^T D (J S)`` (float64, through the smaller
    Gram matrix) split into its top ``choose_rank`` eigenpairs and the rest of its diagonal.

    ``residual``: the data's mean minus the prediction at ``centre`` (flattened like the
    Jacobian's rows). The centre then takes one Gauss-Newton step along the informed directions
    (eigenvalue >= 1, each component at most `NEWTON_LIMIT` posterior sds), so that a pre-fit that
    stopped short of the minimum does not put the start beside the posterior (measured on a
    2-weight ODE after the default 2000-epoch pre-fit: 1.75 posterior sds)."""
    b = np.sqrt(np.asarray(precision, np.float64))[:, None] * np.asarray(jacobian, np.float64)
    b = b * np.asarray(scale, np.float64)[None, :]
    n = b.shape[1]
    if b.shape[0] < n:
        lam, vecs = np.linalg.eigh(b @ b.T)
        keep = lam > 1e-12 * max(lam.max(), 1e-300)
        lam, q = lam[keep], (b.T @ vecs[:, keep]) / np.sqrt(lam[keep])
    else:
        lam, q = np.linalg.eigh(b.T @ b)
    order = np.argsort(lam)[::-1]
    lam, q = np.maximum(lam[order], 0.0), q[:, order]
    if q.shape[1] < 2:  # fewer informed directions than the drift's minimum rank
        extra = np.linalg.qr(np.concatenate([q, np.eye(n)], axis=1))[0][:, : min(n, 2)]
        lam = np.concatenate([lam, np.zeros(extra.shape[1] - q.shape[1])])
        q = extra
    rank = choose_rank(lam, n, max_rank)
    dtype = centre.dtype
    centre = np.asarray(centre, np.float64)
    if residual is not None:
        informed = lam[:rank] >= 1.0
        qr, lr = q[:, :rank][:, informed], lam[:rank][informed]
        grad = b.T @ (np.sqrt(np.asarray(precision, np.float64)) * np.asarray(residual))
        limit = NEWTON_LIMIT / np.sqrt(1 + lr)
        step = np.clip((qr.T @ grad) / lr, -limit, limit)
        centre = centre + qr @ step
    total_diag = np.sum(b**2, axis=0)
    rest = np.maximum(total_diag - (q[:, :rank] ** 2) @ lam[:rank], 0.0)
    return GaussianStart(
        centre=jnp.asarray(centre, dtype),
        eigvecs=jnp.asarray(q[:, :rank], dtype),
        eigvals=jnp.asarray(lam[:rank], dtype),
        diag=jnp.asarray(rest, dtype),
        max_precision=float(lam.max(initial=0.0)),
    )


class GaussNewtonTransform(eqx.Module):
    """The h-transform of the data model linearised at each replica (the module docstring's
    second formula), for the ``gaussian`` likelihood.

    Attributes:
        partition: the flat-weight layout of the data model.
        inputs: one input per condition group.
        w_d: the deterministic weights, held at the MLE's ``(nd,)``.
        target: ``y_bar``, each group's mean training trajectory ``(G, T, ny)``.
        precision: ``D``, the data term's curvature in each prediction,
            ``N_g / (sigma^2 beta)`` for a group of ``N_g`` training trajectories ``(G, T, ny)``.
        iterations: how often the linearisation point ``x`` moves from ``mu`` to the mean of
            ``w_T`` given the data under the model linearised at ``x`` (the iterated extended
            Kalman update); each costs one more Jacobian per replica and step.

    The arrays are fixed, not trained: `__call__` stops their gradients. Its derivative in
    ``u`` is the whole one, through the linearisation point ``x`` and the Jacobian ``J``
    (second derivatives of the data model), so that a gradient through the paths is the
    ELBO's. With ``x`` and ``J`` held fixed (the Gauss-Newton derivative, as before) the
    ELBO's directional derivative along the drift's MLP came out 0.31x its central difference
    on a 33-weight NODE (`bench/guide_gradient.py`). Training itself does not differentiate
    the guide: its gradient is the score function's along detached paths
    (`langevin_uq.methods.ls.ELBO.detached`), less noisy and 8x cheaper than the whole
    derivative through the paths, which stays available (and tested) as its reference.
    """

    partition: WeightPartition
    inputs: GroupInputs
    w_d: Float[Array, " nd"]
    target: Float[Array, "G T ny"]
    precision: Float[Array, "G T ny"]
    iterations: int = eqx.field(static=True, default=1)

    @classmethod
    def from_data(
        cls,
        partition: WeightPartition,
        inputs: GroupInputs,
        w_d: Float[Array, " nd"],
        y: Float[Array, "N T ny"],
        group: Int[Array, " N"],
        sigma: Float[Array, " ny"],
        beta: float,
        iterations: int = 1,
    ) -> "GaussNewtonTransform":
        """From training trajectories ``y`` of groups ``group`` with noise sd ``sigma`` per
        output; the data term is the Gaussian negative log-likelihood divided by ``beta``."""
        target, counts = group_means(y, group, inputs.n_groups)
        precision = jnp.broadcast_to(counts[:, None, None] / (sigma**2 * beta), target.shape)
        return cls(partition, inputs, w_d, target, precision, iterations)

    @classmethod
    def placeholder(
        cls, partition: WeightPartition, n_groups: int, n_times: int, n_outputs: int,
        n_inputs: int, dtype, iterations: int = 1,
    ) -> "GaussNewtonTransform":  # fmt: skip
        """Zero arrays of the right shapes: a skeleton for loading a checkpoint into."""
        zeros = jnp.zeros((n_groups, n_times, n_outputs), dtype)
        inputs = GroupInputs(
            t=jnp.zeros((n_groups, n_times), dtype),
            x=jnp.zeros((n_groups, n_times, n_inputs), dtype),
            y0=jnp.zeros((n_groups, n_outputs), dtype),
        )
        nd = len(partition.deterministic_index)
        return cls(partition, inputs, jnp.zeros(nd, dtype), zeros, zeros, iterations)

    def overflows(self, w_s: Float[Array, "R ns"]) -> Bool[Array, " R"]:
        """Which weight vectors make the data model overflow (a non-finite prediction) on the
        training inputs: there the data term is infinite and the posterior has no mass."""
        w = self.partition.join(w_s, self.w_d)
        return nonfinite_rows(predict_ensemble(self.partition, w, self.inputs))

    def predictions(
        self, w_s: Float[Array, " ns"], inputs: GroupInputs, w_d: Float[Array, " nd"]
    ) -> Float[Array, " P"]:
        """Every group's predictions at stochastic weights ``w_s``, flattened (``P = G T ny``):
        what the transform linearises."""
        return predict_groups(self.partition, self.partition.join(w_s, w_d), inputs).ravel()

    def __call__(
        self, u: Float[Array, " ns"], remaining: Float[Array, ""], prior: OUPrior
    ) -> Float[Array, " ns"]:
        """``g(u, tau)`` with ``remaining = T - tau``, in prior units per unit pseudo-time."""
        inputs, w_d, target, precision = jax.lax.stop_gradient(
            (self.inputs, self.w_d, self.target, self.precision)
        )
        a = jnp.exp(-remaining)
        v = -jnp.expm1(-2 * remaining)
        mu = a * u
        y_bar, root = target.ravel(), jnp.sqrt(precision).ravel()
        n_pred, ns = y_bar.size, u.shape[0]

        def predict(x):
            return self.predictions(prior.unwhiten(x), inputs, w_d)

        def linearise(x):
            """``y_hat(x)`` and its Jacobian ``(P, ns)``, by the cheaper of the two modes."""
            eye = jnp.eye(min(n_pred, ns), dtype=u.dtype)
            if n_pred <= ns:
                y, vjp = jax.vjp(predict, x)
                return y, jax.vmap(lambda e: vjp(e)[0])(eye)
            y, jvp = jax.linearize(predict, x)
            return y, jax.vmap(jvp, out_axes=1)(eye)

        def gain(jac, residual):
            """``J^T (D^-1 + v J J^T)^-1 residual`` through the eigenvalues of the smaller Gram
            matrix: its factors stay bounded by 1 in float32, where a Cholesky of
            ``I + v B B^T`` (condition number up to 1e8 on the NODE of issue 3) failed."""
            b, r = root[:, None] * jac, root * residual
            if n_pred <= ns:
                lam, q = jnp.linalg.eigh(b @ b.T)
                return b.T @ (q @ ((q.T @ r) / (1 + v * jnp.maximum(lam, 0.0))))
            lam, q = jnp.linalg.eigh(b.T @ b)
            return q @ ((q.T @ (b.T @ r)) / (1 + v * jnp.maximum(lam, 0.0)))

        mu0 = jax.lax.stop_gradient(mu)
        x = mu
        reach = NEWTON_LIMIT / jnp.sqrt(v)  # on the gain: v * gain within 3 sqrt(v); inf at T
        v_floor = jnp.maximum(v, jnp.finfo(v.dtype).tiny)  # divides; v = 0 stays finite

        def bounded(jac, residual):
            return jnp.clip(gain(jac, residual), -reach, reach)

        def objective(x, y):
            """What the mean of ``u_T`` given ``u`` and the data minimises (infinite where the
            model overflows)."""
            misfit = 0.5 * jnp.sum((root * (y - y_bar)) ** 2)
            prior_term = 0.5 * jnp.sum((x - mu0) ** 2) / v_floor
            return jnp.where(jnp.isfinite(misfit), misfit, jnp.inf) + prior_term

        def damping(x, y, step):
            """The longest of `STEP_FRACTIONS` of ``step`` from ``x`` that does not raise the
            objective (0 if none): a linearisation far from the truth proposes steps that do."""
            fractions = jnp.asarray(STEP_FRACTIONS, x.dtype)
            trial = x + fractions[:, None] * jax.lax.stop_gradient(step)[None]
            worse = jax.vmap(lambda c: objective(c, predict(c)))(trial) > objective(x, y)
            return jnp.where(jnp.all(worse), 0.0, fractions[jnp.argmin(worse)])

        for _ in range(self.iterations):  # the mean of u_T given the data, linearised at x
            y, jac = linearise(x)
            step = mu + v * bounded(jac, y_bar - y - jac @ (mu - x)) - x
            x = x + damping(x, y, step) * step
        y, jac = linearise(x)
        b = bounded(jac, y_bar - y - jac @ (mu - x))
        t = jax.lax.stop_gradient(damping(x, y, mu + v * b - x))
        # 2 a (m - a u) / v with m = x + t (mu + v b - x), the 1 / v cancelled where it can
        return 2 * a * (t * b + (1 - t) * (x - mu) / v_floor)


def guide_drift(
    u: Float[Array, "R ns"], guide, remaining: Float[Array, ""], prior: OUPrior
) -> Float[Array, "R ns"]:
    """The guide's drift at each replica ``(R, ns)``, zero (and without gradient) at a replica
    where it is not finite: a Gauss-Newton guide solves the data model at every replica, and a
    prior draw that makes the model overflow would otherwise turn the replica, and every
    gradient, to NaN. The replica then moves by the rest of the drift there."""
    return finite_rows(_guide_rows, u, guide, remaining, prior)[0]


def _guide_rows(u, guide, remaining, prior):
    return jax.vmap(guide, in_axes=(0, None, None))(u, remaining, prior)


START_PRECISIONS = (0.0, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5)
"""Extra precisions (prior units) tried for the directions the linearisation leaves
uninformed (`calibrate_start`)."""


def calibrate_start(drift, loss, max_precision: float, final_dtau: float = 0.0) -> tuple:
    """The start among ``drift.with_extra_precision(extra)`` (`langevin_uq.sampler.Drift`) for
    ``extra`` in ``START_PRECISIONS`` with the lowest loss.

    The Gauss-Newton start leaves prior-wide every direction that does not move the predictions
    at first order; for a neural ODE most of them still do at second order, so replicas drawn
    prior-wide there score data terms orders of magnitude above the MLE's. One extra precision
    for all weights, chosen by the training objective itself (``loss(drift) -> scalar``, with
    fixed keys), starts training where the ELBO is lowest in that family.

    Extras are tried up to what the pseudo-time grid resolves: the last step ``final_dtau``
    adds noise of variance ``2 final_dtau`` to a posterior variance ``1 / extra``, so up to
    ``0.01 / final_dtau`` (1 % in variance), and at least up to the data's largest precision.
    A cap at the data's largest precision alone stopped the Schloegl NODE with the energy score
    at 10 (its largest precision is 22.5, the loss still falling 20-fold per decade there), and
    its draws stayed prior-wide through training (final-time W1 0.5-0.6 of the mode gap).

    Returns ``(drift, extra, [(extra, loss), ...])``.
    """
    limit = max(max_precision, 1.0, 0.01 / final_dtau if final_dtau > 0 else 0.0)
    tried = []
    for extra in START_PRECISIONS:
        if extra > limit * (1 + 1e-9):
            break
        value = float(loss(drift.with_extra_precision(extra)))
        tried.append((extra, value if np.isfinite(value) else float("inf")))
    best = min(tried, key=lambda t: t[1])[0]
    return drift.with_extra_precision(best), best, tried
