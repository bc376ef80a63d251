"""How the checks measure robustness: theorylab.evaluate under one budget, as a sandwich.

Every robustness number a check reports comes from
:func:`theorylab.evaluate.robustness` and is reported as four measurements,

    <name>_attack       the fraction no attack broke (upper side; witnesses re-checked)
    <name>_certified    the fraction proven robust by a certificate or an exact solve
    <name>_exact        the robust accuracy itself, where nothing is unresolved (else NaN)
    <name>_unresolved   the number of points neither broken nor proven

(:func:`sandwich`), and the report shows them side by side.  Claims of robustness
are judged on ``_certified`` (the sound lower side), claims of non-robustness on
``_attack`` (witnesses).  The budget below is what the quick and full regimes
spend; it is stated in every check's notes through :data:`EVALUATION_NOTE`.
"""

from __future__ import annotations

import numpy as np

from theorylab.evaluate import Budget, robustness

__all__ = ["CHECK_BUDGET", "evaluate", "sandwich", "SIDES", "EVALUATION_NOTE", "curve_extra"]

# APGD at 50 iterations and the random search at 200 queries per radius keep make check
# within its time budget; at the judged radius the exact solver settles what they leave.
CHECK_BUDGET = Budget(pgd_steps=20, apgd_iters=50, apgd_restarts=1, square_queries=200,
                      fmn_steps=100, crown_iters=20, time_limit=5.0, node_limit=500,
                      exact_time=20.0)
SIDES = ("attack", "certified", "exact", "unresolved")
EVALUATION_NOTE = (
    "Robust accuracies are sandwiches (theorylab.evaluate.robustness): _attack = no attack "
    "broke the point (FMN, FGM, PGD-20, APGD-50, random search 200 queries, and the dense "
    "direction where the world is known; every witness re-checked on the model), _certified "
    "= proven robust by the certificate or the exact solver (at eps_eval where it runs: at "
    "most 5 s a point and 20 s a radius, the rest stays unresolved and is counted), _exact "
    "= the robust accuracy where no point is unresolved. Robustness claims are judged on _certified, "
    "non-robustness claims on _attack.")


def evaluate(model, X, y, grid, norm, *, world=None, exact_at=(), seed=0, attacks=None,
             certify=True):
    """:func:`theorylab.evaluate.robustness` under :data:`CHECK_BUDGET`."""
    return robustness(model, X, y, grid, norm, world=world, exact=list(exact_at) or False,
                      budget=CHECK_BUDGET, seed=seed, attacks=attacks, certify=certify)


def sandwich(name, res, eps):
    """The four measurements of ``res`` at radius ``eps``, keyed ``<name>_<side>``."""
    at = res.at(eps)
    out = {f"{name}_{side}": at[side] for side in SIDES}
    if not res.methods.get("certificate") and not res.methods.get("exact"):
        # Only the attack side was computed (a non-robustness claim): the lower side is
        # unknown, not zero.
        out[f"{name}_certified"] = out[f"{name}_exact"] = float("nan")
    out[f"{name}_unresolved"] = int(at["unresolved"])
    if at["masking"]:
        out[f"{name}_masking"] = int(at["masking"])
    return out


def curve_extra(res):
    """What a figure needs to draw the band between the certified and attack curves."""
    return {"attack": res.attack_accuracy.tolist(), "certified": res.certified_accuracy.tolist(),
            "unresolved": res.unresolved.tolist(), "clean": res.clean_accuracy}


def pick(res, side):
    """The curve of one side (``"attack"`` or ``"certified"``) as an array."""
    return np.asarray(res.attack_accuracy if side == "attack" else res.certified_accuracy)
