"""The benchmark workloads written the idiomatic PyTorch way (CPU, eager, autograd).

``torch`` is passed in (``_timing.torch_or_none()``): this module imports nothing
that may be missing.  The ``*_step_fn`` functions return a ``step()`` closure that
updates its own copy of the weights; :func:`peer` turns one into the harness's
``(run, result)`` pair.  Same mathematics as theorylab's kernels and
``_peers_jax``: thresholds b_i = c max_j |W_ij| taken from the detached weights.
"""

from __future__ import annotations

import numpy as np

__all__ = ["torch_step_fn", "cnn_torch_step_fn", "fgm_step_fn", "pgd_fn", "loop_fn", "peer"]

C = 0.5  # threshold coefficient of every two-layer workload


def _scores(torch, W, X, b):
    U = X @ W.T
    return (torch.relu(U - b) - torch.relu(-U - b)).sum(1)


def _descend(torch, Wt, loss, lr):
    loss.backward()
    with torch.no_grad():
        Wt.sub_(lr * Wt.grad)
    Wt.grad = None


def _weights(torch, W):
    return torch.from_numpy(np.array(W, copy=True)).requires_grad_(True)


def torch_step_fn(torch, X, y, W, lr=0.5):
    """The clean full-batch GD step of the two-layer network."""
    Xt, yt, Wt = torch.from_numpy(X), torch.from_numpy(y), _weights(torch, W)

    def step():
        b = C * Wt.detach().abs().amax(dim=1)
        _descend(torch, Wt, torch.nn.functional.softplus(-yt * _scores(torch, Wt, Xt, b)).mean(),
                 lr)

    step.weights = Wt
    return step


def loop_fn(torch, X, y, W, lr, steps):
    """``steps`` clean steps per call, one after the other (eager PyTorch has no fused loop)."""
    one = torch_step_fn(torch, X, y, W, lr)

    def step():
        for _ in range(steps):
            one()

    step.weights = one.weights
    return step


def _l2_direction(torch, G):
    n = G.norm(dim=1, keepdim=True)
    return G / torch.where(n > 0, n, torch.ones_like(n))  # a zero gradient gives a zero step


def _input_gradient(torch, W, X, y, b):
    Xr = X.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.softplus(-y * _scores(torch, W, Xr, b))
    return loss.detach(), torch.autograd.grad(loss.sum(), Xr)[0]


def fgm_step_fn(torch, X, y, W, lr, eps):
    """One FGM (l2) adversarial training step: attack at W, GD step on x + delta."""
    Xt, yt, Wt = torch.from_numpy(X), torch.from_numpy(y), _weights(torch, W)

    def step():
        Wd = Wt.detach()
        b = C * Wd.abs().amax(dim=1)
        Xa = Xt + eps * _l2_direction(torch, _input_gradient(torch, Wd, Xt, yt, b)[1])
        _descend(torch, Wt, torch.nn.functional.softplus(-yt * _scores(torch, Wt, Xa, b)).mean(),
                 lr)

    step.weights = Wt
    return step


def pgd_fn(torch, X, y, W, eps, steps):
    """l2 PGD from 0 keeping the best iterate per row (``attacks.pgd``'s defaults)."""
    Xt, yt, Wt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(W)
    alpha = 2.5 * eps / steps
    out = {}

    def step():
        b = C * Wt.abs().amax(dim=1)
        D = torch.zeros_like(Xt)
        best, best_loss = torch.zeros_like(Xt), torch.full_like(yt, -np.inf)
        for t in range(steps + 1):
            loss, G = _input_gradient(torch, Wt, Xt + D, yt, b)
            better = loss > best_loss  # strict: the first best wins ties
            best[better] = D[better]
            best_loss = torch.where(better, loss, best_loss)
            if t == steps:
                break
            D = D + alpha * _l2_direction(torch, G)
            n = D.norm(dim=1, keepdim=True)
            D = D * torch.clamp(eps / torch.where(n > 0, n, torch.ones_like(n)), max=1.0)
        out["best"] = best

    step.weights = None
    step.out = out
    return step


def cnn_torch_step_fn(torch, X, y, W, lr, q, rho):
    """One GD step of ``bench_cnn``'s smoothed-ReLU patch CNN."""
    n, P, d = X.shape
    K, m, _ = W.shape
    Xt = torch.from_numpy(X.reshape(n * P, d))
    yt = torch.from_numpy(y)
    Wt = _weights(torch, W.reshape(K * m, d))

    def step():
        zp = (Xt @ Wt.T).clamp_min(0.0)
        t = zp.clamp_max(rho) / rho
        act = torch.where(zp >= rho, zp - (1 - 1 / q) * rho, rho * t ** q / q)
        F = act.reshape(n, P, K, m).sum(dim=(1, 3))
        _descend(torch, Wt, torch.nn.functional.cross_entropy(F, yt), lr)

    step.weights = Wt
    step.shape = W.shape
    return step


def peer(step):
    """``(run, result)`` of a step closure: result() is its weights (or PGD's best) as NumPy."""
    def result():
        if step.weights is None:
            return step.out["best"].numpy()
        return step.weights.detach().numpy().reshape(getattr(step, "shape", step.weights.shape))

    return step, result
