"""Evaluation helpers of the ll checks on the Li & Li pipeline (:mod:`theorylab.pipelines.li_li`).

No check is registered here.
"""

from __future__ import annotations

from theorylab.attacks import structured_accuracy
from theorylab.pipelines import clear
from theorylab.pipelines.li_li import ADV, BASE, adversarial_run, make_world, seeds, standard_run

from ._evaluation import evaluate

__all__ = ["BASE", "ADV", "make_world", "standard_run", "adversarial_run",
           "pgd_accuracy", "robustness", "structured", "learning_curves", "clear_cache",
           "curve", "sandwich_curves"]



def clear_cache():
    """Forget every cached pipeline stage (tests use it to measure from scratch)."""
    clear()


def robustness(model, test, eps_grid, p, seed, certify=True):
    """The sandwich of ``model`` over ``eps_grid`` in the threat norm (theorylab.evaluate)."""
    return evaluate(model, test.X, test.y, [e for e in eps_grid if e > 0], p["threat"],
                    seed=seeds(seed)[4], certify=certify)


def pgd_accuracy(model, test, eps, p, seed, side="attack"):
    """Robust accuracy at ``eps`` on one side of the sandwich (attack: no witness found)."""
    if eps == 0:
        return model.accuracy(test.X, test.y)
    res = robustness(model, test, [eps], p, seed, certify=side != "attack")
    return float(res.attack_accuracy[0] if side == "attack" else res.certified_accuracy[0])


def structured(model, world, test, eps):
    """Accuracy under the -v_y attack on the non-robust patches."""
    return structured_accuracy(model, world, test, eps)


def curve(model, run, seed, factors, unit=None):
    """The sandwich and the structured-attack accuracy at radii ``factors`` x ``unit``.

    ``unit`` defaults to the erasure threshold of ``run["world"]``.  Returns the
    radii, the Robustness and the structured accuracies.
    """
    unit = run["world"].erasure_radius() if unit is None else unit
    eps = [f * unit for f in factors]
    p = {"threat": run["world"].threat}
    return eps, robustness(model, run["test"], eps, p, seed), \
        [structured(model, run["world"], run["test"], e) for e in eps]


def sandwich_curves(extras, label="", suffix=""):
    """Figure curves of the checks' ``extra`` dicts: strongest attack, certified, -v_y.

    ``label`` prefixes the curve names; ``suffix`` picks the keys of another network
    (``"_std"``: the standard one).
    """
    return {f"{label}strongest attack": [e["pgd" + suffix] for e in extras],
            f"{label}certified": [e["certified" + suffix] for e in extras],
            f"{label}-v_y": [e["structured" + suffix] for e in extras]}


def learning_curves(history):
    """(step, gamma_u, gamma_v) arrays of a run, for the figures."""
    return (history["step"].tolist(), history["gamma_u"].tolist(),
            history["gamma_v"].tolist())
