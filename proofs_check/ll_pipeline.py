"""Evaluation helpers of the ll checks on the Li & Li pipeline (:mod:`theorylab.pipelines.li_li`).

No check is registered here.
"""

from __future__ import annotations

from theorylab import attacks
from theorylab.attacks import structured_accuracy
from theorylab.pipelines import clear
from theorylab.pipelines.li_li import ADV, BASE, adversarial_run, make_world, seeds, standard_run

__all__ = ["BASE", "ADV", "make_world", "standard_run", "adversarial_run",
           "pgd_accuracy", "structured", "learning_curves", "clear_cache"]



def clear_cache():
    """Forget every cached pipeline stage (tests use it to measure from scratch)."""
    clear()


def pgd_accuracy(model, test, eps, p, seed):
    """Robust accuracy under PGD (``pgd_steps`` steps, random start) in the threat norm."""
    if eps == 0:
        return model.accuracy(test.X, test.y)
    return attacks.robust_accuracy(model, test.X, test.y, eps, p["threat"], steps=p["pgd_steps"],
                                   random_start=True, seed=seeds(seed)[4])


def structured(model, world, test, eps):
    """Accuracy under the -v_y attack on the non-robust patches."""
    return structured_accuracy(model, world, test, eps)


def learning_curves(history):
    """(step, gamma_u, gamma_v) arrays of a run, for the figures."""
    return (history["step"].tolist(), history["gamma_u"].tolist(),
            history["gamma_v"].tolist())
