"""A claim of your own, run by theorylab's check runner.

Run it with::

    theorylab check --module examples/my_claim.py --seeds 3 --report r.md

(``--only user.`` runs only this file's checks; ``--list`` shows where every
check comes from.)  The file registers one :class:`proofs_check.Check`: the
claim, its parameter regimes, the criteria written *before* the run, and a
``run(seed, params)`` returning the measurements the criteria judge.

The claim: for a linear classifier ``f(x) = <w, x>`` the closed-form FGM
attack in l2, ``x - eps * y * w / ||w||``, is the worst case, so its robust
accuracy equals the exact one, ``mean(y f(x) > eps ||w||)``.  We test it on the
Bayes linear rule ``M w*`` of a sparse-coding world.
"""

import numpy as np

import proofs_check as pc
from theorylab import attacks
from theorylab.models import LinearClassifier
from theorylab.worlds import SparseCoding


def run(seed, params):
    """One seed: the world, the Bayes rule ``M w*``, FGM against the exact answer."""
    world = SparseCoding(params["d"], params["k"], noise=params["noise"], seed=seed)
    model = LinearClassifier(world.d, w=world.M @ world.w_star)
    test = world.sample(params["n"], np.random.SeedSequence([seed, 1]))
    margins = test.y * model.decision_function(test.X)
    w_norm = float(np.linalg.norm(model.w))
    fgm, exact = [], []
    for eps in params["radii"]:
        fgm.append(attacks.robust_accuracy(model, test.X, test.y, eps, 2, attack="fgm"))
        exact.append(float(np.mean(margins > eps * w_norm)))
    fgm, exact = np.array(fgm), np.array(exact)
    return {
        "clean_accuracy": float(np.mean(margins > 0)),
        "fgm_minus_exact": float(np.max(np.abs(fgm - exact))),
        "extra": {"radii": list(params["radii"]), "fgm": fgm, "exact": exact},
    }


def figure(results):
    """FGM and exact robust accuracy against the radius (first seed)."""
    from matplotlib.figure import Figure

    e = results[0]["extra"]
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    ax.plot(e["radii"], e["exact"], "k-", label="exact")
    ax.plot(e["radii"], e["fgm"], "o", mfc="none", label="FGM")
    ax.set_xlabel("l2 radius")
    ax.set_ylabel("robust accuracy")
    ax.legend()
    return fig


CHECK = pc.register(pc.Check(
    id="user.linear_fgm_is_exact",
    paper="my notes (a linear model's worst case)",
    claim="For a linear classifier, l2 FGM finds the exact worst case: its robust accuracy "
          "equals mean(y f(x) > eps ||w||) at every radius.",
    provenance="[D]",
    regimes={"quick": {"d": 32, "k": 3, "noise": 0.05, "n": 500,
                       "radii": [0.1, 0.2, 0.4, 0.8, 1.6]},
             "full": {"d": 256, "k": 8, "noise": 0.05, "n": 5000,
                      "radii": [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]}},
    criteria=[
        pc.Criterion("clean_accuracy", ">=", 0.9, "the Bayes rule must classify the world "
                     "(else the comparison is vacuous)", kind="precondition"),
        pc.Criterion("fgm_minus_exact", "<=", 0.0, "equality is the claim: a single point of "
                     "difference refutes it"),
    ],
    run=run,
    figure=figure,
    notes="A template: copy this file, change run(), the criteria and the regimes.",
))
