"""The benchmark workloads written the way a theorist writes them in JAX.

Each ``*_fn`` returns ``(run, result)``: ``run()`` does the workload once and waits
for it (``block_until_ready``), ``result()`` the state after the last call as a
NumPy array (the weights, or PGD's best perturbation), which the harness compares
with theorylab's before anything is timed.  Every function is ``jax.jit``-compiled
once, outside the timed calls; the whole small training loop is one compiled
``lax.fori_loop``.  float64 needs ``jax_enable_x64``, switched on at import (a
float32 problem stays float32: the arrays carry their dtype).

Same mathematics as theorylab's kernels: thresholds b_i = c max_j |W_ij| held
constant in the gradient (``stop_gradient``), the symmetric threshold network
f = sum_i relu(u_i - b_i) - relu(-u_i - b_i), the mean logistic loss; the CNN of
``bench_cnn`` with the softmax cross-entropy.
"""

from __future__ import annotations

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after the x64 switch)
from jax import lax  # noqa: E402

__all__ = ["version", "gd_step_fn", "loop_fn", "fgm_step_fn", "pgd_fn", "cnn_step_fn",
           "gemms_fn"]

version = jax.__version__


def _b(W, c):
    return lax.stop_gradient(c * jnp.max(jnp.abs(W), axis=1))


def _scores(W, X, b):
    U = X @ W.T
    return jnp.sum(jax.nn.relu(U - b) - jax.nn.relu(-U - b), axis=1)


def _mean_loss(W, X, y, b):
    return jnp.mean(jax.nn.softplus(-y * _scores(W, X, b)))


def _gd(W, X, y, lr, c):
    return W - lr * jax.grad(_mean_loss)(W, X, y, _b(W, c))


def _stateful(step, W, *data):
    # run() advances the weights by one call of the compiled ``step``.
    state = [jnp.asarray(W)]
    data = [jnp.asarray(a) for a in data]

    def run():
        state[0] = step(state[0], *data)
        state[0].block_until_ready()

    return run, lambda: np.asarray(state[0])


def gd_step_fn(X, y, W, lr, c=0.5):
    """One clean full-batch GD step per call."""
    step = jax.jit(lambda W, X, y: _gd(W, X, y, lr, c))
    return _stateful(step, W, X, y)


def loop_fn(X, y, W, lr, steps, c=0.5):
    """``steps`` clean GD steps per call, compiled as one ``lax.fori_loop``."""
    loop = jax.jit(lambda W, X, y: lax.fori_loop(0, steps, lambda t, W: _gd(W, X, y, lr, c), W))
    return _stateful(loop, W, X, y)


def _input_gradient(W, X, y, b):
    # d loss_n / d x_n for every row: the gradient of the summed per-sample losses.
    return jax.grad(lambda X: jnp.sum(jax.nn.softplus(-y * _scores(W, X, b))))(X)


def _l2_direction(G):
    n = jnp.linalg.norm(G, axis=1, keepdims=True)
    return G / jnp.where(n > 0, n, 1.0)  # a zero gradient gives a zero step


def fgm_step_fn(X, y, W, lr, eps, c=0.5):
    """One FGM (l2) adversarial training step per call: attack at W, GD step on x + delta."""

    def step(W, X, y):
        b = _b(W, c)
        Xa = X + eps * _l2_direction(_input_gradient(W, X, y, b))
        return W - lr * jax.grad(_mean_loss)(W, Xa, y, b)

    return _stateful(jax.jit(step), W, X, y)


def pgd_fn(X, y, W, eps, steps, c=0.5):
    """l2 PGD from 0 (``attacks.pgd``'s defaults): the best iterate per row, whole loop compiled."""
    alpha = 2.5 * eps / steps

    def attack(W, X, y):
        b = _b(W, c)

        def per_sample(X):
            return jax.nn.softplus(-y * _scores(W, X, b))

        def body(t, carry):
            D, best, best_loss = carry
            loss, vjp = jax.vjp(per_sample, X + D)
            better = loss > best_loss  # strict: the first best wins ties
            best = jnp.where(better[:, None], D, best)
            best_loss = jnp.where(better, loss, best_loss)
            D = D + alpha * _l2_direction(vjp(jnp.ones_like(loss))[0])
            n = jnp.linalg.norm(D, axis=1, keepdims=True)
            D = D * jnp.minimum(1.0, eps / jnp.where(n > 0, n, 1.0))
            return D, best, best_loss

        zero = jnp.zeros_like(X)
        start = (zero, zero, jnp.full(X.shape[0], -jnp.inf, X.dtype))  # delta = 0 wins step 0
        D, best, best_loss = lax.fori_loop(0, steps, body, start)
        last = per_sample(X + D)  # the last iterate's loss (its gradient is not needed)
        return jnp.where((last > best_loss)[:, None], D, best)

    f = jax.jit(attack)
    Wj, Xj, yj = jnp.asarray(W), jnp.asarray(X), jnp.asarray(y)
    out = [None]

    def run():
        out[0] = f(Wj, Xj, yj)
        out[0].block_until_ready()

    return run, lambda: np.asarray(out[0])


def cnn_step_fn(X, y, W, lr, q, rho):
    """One GD step of ``bench_cnn``'s smoothed-ReLU patch CNN per call."""
    n, P, d = X.shape
    K, m, _ = W.shape

    def loss(Wf, Xf, y):
        zp = jnp.maximum(Xf @ Wf.T, 0.0)
        t = jnp.minimum(zp, rho) / rho
        act = jnp.where(zp >= rho, zp - (1 - 1 / q) * rho, rho * t ** q / q)
        F = act.reshape(n, P, K, m).sum(axis=(1, 3))
        return jnp.mean(jax.nn.logsumexp(F, axis=1) - jnp.take_along_axis(F, y[:, None], 1)[:, 0])

    step = jax.jit(lambda Wf, Xf, y: Wf - lr * jax.grad(loss)(Wf, Xf, y))
    run, result = _stateful(step, W.reshape(K * m, d), X.reshape(n * P, d), y)
    return run, lambda: result().reshape(K, m, d)


def gemms_fn(X, W, A, counts):
    """A workload's GEMMs alone, compiled: ``counts`` = (scores X W^T, weight gradients
    A^T X, input gradients A W).

    Each product moves W (and A) by 1e-30 of itself or of its column maxima (a slice
    would let XLA compute only that slice of the product), so XLA can neither hoist
    the products out of their loops nor drop or shrink them; the maxima and the move
    of A add one pass over an (N, m) array per product, counted here as GEMM time.
    """
    n_scores, n_weight, n_input = counts

    def run(X, W, A):
        W = lax.fori_loop(0, n_scores, lambda t, W: W + 1e-30 * (X @ W.T).max(0)[:, None], W)

        def weight(t, WA):  # A moves too: A^T X would be hoisted out of the loop otherwise
            P = WA[1].T @ X
            return WA[0] + 1e-30 * P, WA[1] + 1e-30 * P[0, 0]

        W = lax.fori_loop(0, n_weight, weight, (W, A))[0]
        return lax.fori_loop(0, n_input, lambda t, W: W + 1e-30 * (A @ W).max(0), W).sum()

    f = jax.jit(run)
    Xj, Wj, Aj = jnp.asarray(X), jnp.asarray(W), jnp.asarray(A)
    return lambda: jax.block_until_ready(f(Xj, Wj, Aj))
