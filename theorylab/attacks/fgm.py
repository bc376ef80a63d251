"""Fast gradient method: one closed-form step of radius eps up the loss."""

from __future__ import annotations


from .._validation import check_choice, check_float, check_norm
from ._core import (ZERO_GRAD_POLICIES, compiled_loop, prepare, require_finite_gradients,
                    steepest_ascent)
from ._registry import Attack, register

__all__ = ["fgm"]


def _fgm(model, X, y, eps, p, *, world=None, seed=0, zero_grad="zero"):
    # Validated arrays in: the registered attack (training's inner step calls this).
    if zero_grad == "zero" and compiled_loop(model, "fgm", p):
        delta, ok = model.compiled_fgm(X, y, eps, p)
        require_finite_gradients(ok, delta)
        return delta
    _, G = model.loss_and_input_gradient(X, y, check_input=False)
    return steepest_ascent(G, eps, p, zero_grad=zero_grad).astype(X.dtype, copy=False)


def _fgm_train_step(model, X, y, eps, p, *, world=None, seed=0, zero_grad="zero"):
    # A training step's attack and weight gradient in one kernel, where the model has it:
    # the bits of _fgm, X + delta and weight_gradient, without the (N, d) perturbed copy.
    if zero_grad == "zero" and compiled_loop(model, "fgm_step", p):
        loss, f, grad, ok = model.compiled_fgm_weight_gradient(X, y, eps, p)
        require_finite_gradients(ok)
        return loss, f, grad
    return None


def fgm(model, X, y, eps, norm, *, zero_grad="zero"):
    """Fast gradient method: one closed-form step of radius ``eps`` up the loss.

    Parameters
    ----------
    model : theorylab model
    X : array of shape (N, ...)
    y : labels
    eps : float
        Radius >= 0.
    norm : {2, inf, 1}
        FGM (l2), FGSM (linf), or the l1 single-coordinate step.
    zero_grad : {"zero", "raise"}
        Policy for a sample with an exactly zero gradient (default: zero step).

    Returns
    -------
    delta : ndarray, same shape as ``X``

    Notes
    -----
    With ``zero_grad="zero"``, l2 and linf run the model's compiled step when it
    has one: the same bits in linf, the same up to rounding in l2.
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    check_choice("zero_grad", zero_grad, ZERO_GRAD_POLICIES)
    X, y = prepare(model, X, y)
    return _fgm(model, X, y, eps, p, zero_grad=zero_grad)


def _check(options):
    check_choice("zero_grad", options["zero_grad"], ZERO_GRAD_POLICIES)
    return options


register(Attack("fgm", _fgm, "gradient", options={"zero_grad": "zero"}, trains=True, check=_check,
                train_step=_fgm_train_step, summary="one steepest-ascent step of the loss (FGM l2, FGSM linf)"))
