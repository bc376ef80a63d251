"""Full-batch gradient descent on a fixed image set, clean, adversarial or low-rank.

:func:`theorylab.training.train` samples its held-out set and metrics from a
world; real images have none, so this small loop trains any theorylab model
with ``weight_gradient(X, y)`` (the two-layer network, the CNN) on fixed
arrays, perturbing every training image at the current weights when asked
(spec 2.3: the step is taken on the perturbed points only, no clean term).

:class:`LowRank` restricts the update to W = W_0 + A B of rank r and trains A
and B by the chain rule: dL/dA = G B^T and dL/dB = A^T G, G = dL/dW.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .._validation import as_generator, check_float, check_int, check_norm, norm_name
from ..training import History, run_steps
from ..training._core import resolve_attack

__all__ = ["fit", "LowRank", "perturb", "single_threaded"]


@contextlib.contextmanager
def single_threaded():
    """Run Numba kernels and BLAS on one thread inside the block.

    The image problems are small (a few thousand rows, d <= a few hundred):
    a second thread saves little, and on a shared machine spinning threads
    made each gradient ~100x slower in our measurements.  One thread also
    keeps the bits independent of the machine's core count (a threaded GEMM
    sums in a thread-dependent order).  Thread counts are restored on exit.
    """
    from .._kernels.threads import limit_threads

    with limit_threads(numba_threads=1, blas_threads=1):
        yield


class LowRank:
    """The update W = W0 + A B with A (m, r), B (r, d), trained instead of W.

    Parameters
    ----------
    W0 : ndarray of shape (m, d)
        Frozen base weights (the clean network).
    rank : int
        r, between 1 and min(m, d).
    B0 : ndarray of shape (r, d), optional
        Initial B; default random orthonormal rows (seeded).  A starts at zero,
        so training starts exactly at W0 (LoRA's convention).
    seed : int, SeedSequence or Generator
    """

    def __init__(self, W0, rank, *, B0=None, seed=0):
        self.W0 = np.array(W0, dtype=np.float64)
        m, d = self.W0.shape
        self.rank = check_int("rank", rank, 1, min(m, d))
        if B0 is None:
            Q, _ = np.linalg.qr(as_generator(seed).standard_normal((d, self.rank)))
            B0 = Q.T
        B0 = np.asarray(B0, dtype=np.float64)
        if B0.shape != (self.rank, d):
            raise ValueError(f"B0 must have shape ({self.rank}, {d}), got {B0.shape}")
        self.A = np.zeros((m, self.rank))
        self.B = B0.copy()

    @classmethod
    def spectral(cls, W0, rank, G):
        """Start B at the top-``rank`` right singular vectors of a gradient ``G``.

        The first step is then the best rank-r approximation of a full
        gradient step (A = 0, so dW = -lr G B^T B).  Deterministic.
        """
        _, _, Vt = np.linalg.svd(np.asarray(G, dtype=np.float64), full_matrices=False)
        return cls(W0, rank, B0=Vt[:rank])

    @property
    def W(self):
        return self.W0 + self.A @ self.B

    def step(self, G, lr):
        """One GD step on (A, B) from the W-gradient ``G`` (chain rule)."""
        gA = G @ self.B.T
        gB = self.A.T @ G
        self.A -= lr * gA
        self.B -= lr * gB


def perturb(model, X, y, eps, norm, attack, *, pgd_steps=5, rng=None):
    """``X`` plus the training attack ``attack`` at the current weights, or ``X`` itself.

    ``attack`` is None or a training attack of the registry ("fgm", "pgd": PGD with
    ``pgd_steps`` steps from a random start); eps = 0 returns ``X``.
    """
    if attack is None or eps == 0.0:
        return X
    X, y = model.check_Xy(X, y)
    spec, options = resolve_attack(attack, eps, check_norm(norm), steps=pgd_steps)
    return X + spec.run(model, X, y, eps, check_norm(norm), seed=rng, **options)


def fit(model, X, y, *, steps, lr, adversarial=None, eps=0.0, norm=2, pgd_steps=5, eps_ramp=0,
        low_rank=None, log_every=None, callback=None, seed=0):
    """Full-batch GD of ``model`` on the fixed set (X, y); trained in place.

    Parameters
    ----------
    model : TwoLayerReLU or SmoothedReLUCNN
    X, y : arrays
        The training set in the model's input and label format.
    steps : int
    lr : float
    adversarial : {None, "fgm", "pgd"} or another training attack of the registry
        Train on FGM or PGD points (PGD: ``pgd_steps`` steps of size
        2.5 eps / steps, random start) recomputed at every step.
    eps : float
        Radius: > 0 with ``adversarial`` (clean training is ``adversarial=None``).
    norm : {2, inf}
    eps_ramp : int, default 0
        Ramp eps linearly from 0 over this many steps (adversarial training
        from scratch otherwise shrinks the weights before any feature forms,
        spec robust_features.md 6.1).
    low_rank : LowRank, optional
        Train (A, B) of this update instead of W (two-layer networks).
    log_every : int, optional
        Period of the log (default steps // 10); step 0 and the end are logged.
    callback : callable, optional
        ``callback(model) -> dict`` of extra numbers for each log record.
    seed : int, SeedSequence or Generator
        PGD random starts.

    Returns
    -------
    History
        Records with ``step``, ``eps``, ``loss`` (mean over the perturbed
        training set before the step; the clean training set at the final
        record), ``train_accuracy`` and the callback's numbers.
    """
    steps = check_int("steps", steps, 1)
    lr = check_float("lr", lr, 0.0, low_open=True)
    eps = check_float("eps", eps, 0.0)
    p = check_norm(norm, allowed=(2.0, np.inf))
    pgd_steps = check_int("pgd_steps", pgd_steps, 1)
    attack, attack_options = resolve_attack(adversarial, eps, p, steps=pgd_steps)
    eps_ramp = check_int("eps_ramp", eps_ramp, 0)
    log_every = max(1, steps // 10) if log_every is None else check_int("log_every", log_every, 1)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {type(callback).__name__}")
    if low_rank is not None and low_rank.W0.shape != model.W.shape:
        raise ValueError(f"low_rank.W0 has shape {low_rank.W0.shape}, model.W {model.W.shape}")
    X, y = model.check_Xy(X, y)
    rng = as_generator(seed, "seed")
    history = History(config={"steps": steps, "lr": lr, "adversarial": adversarial, "eps": eps,
                              "norm": norm_name(p), "pgd_steps": pgd_steps,
                              "eps_ramp": eps_ramp,
                              "rank": None if low_rank is None else low_rank.rank})

    def radius(t):
        return eps * min(1.0, t / eps_ramp) if eps_ramp else eps

    def step(t):
        eps_t = radius(t)
        Xt = X
        if attack is not None and eps_t != 0.0:
            Xt = X + attack.run(model, X, y, eps_t, p, seed=rng, **attack_options)
        loss, scores, G = model.weight_gradient(Xt, y, check_input=False)
        return loss, scores, G

    def log(t, loss, scores):
        if t % log_every and t != steps:
            return
        correct = (y * scores > 0) if scores.ndim == 1 else scores.argmax(axis=1) == y
        rec = {"step": t, "eps": radius(t) if t < steps else eps, "loss": loss,
               "train_accuracy": float(np.mean(correct))}
        if callback is not None:
            rec.update(callback(model))
        history.records.append(rec)

    def update(G):
        low_rank.step(G, lr)
        model.W = low_rank.W.astype(model.dtype)

    if low_rank is not None:
        model.W = low_rank.W.astype(model.dtype)
    run_steps(model, steps=steps, lr=lr, step=step, history=history, before_update=log,
              update=None if low_rank is None else update)
    loss, scores, _ = model.weight_gradient(X, y, check_input=False)
    log(steps, float(np.mean(loss)), scores)
    return history
