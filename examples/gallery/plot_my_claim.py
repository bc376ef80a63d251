"""
Write your own claim and run it with ``theorylab check``
========================================================

A claim becomes a :class:`proofs_check.Check`: the claim in words, a
provenance tag, parameter regimes, criteria written *before* the run (each
with the reason for its threshold), and ``run(seed, params)`` returning the
measurements.  The runner judges it on several seeds: a criterion PASSES when
it holds on every seed and FAILS when it fails on at least half; a key no seed
measured is an ERROR with a "did you mean".

The claim here: the robust accuracy of the Bayes linear rule ``M w*`` under
l2 FGM falls to one half near the derived failure radius ``sqrt(k / d)``
(:func:`theorylab.theory.linear_failure_radius`), within a factor of 2.
"""

import os
import tempfile
import textwrap

import matplotlib.pyplot as plt

import proofs_check as pc
from theorylab.cli import main

CLAIM = textwrap.dedent('''
    import numpy as np

    import proofs_check as pc
    from theorylab import attacks, theory
    from theorylab.models import LinearClassifier
    from theorylab.worlds import SparseCoding


    def run(seed, params):
        world = SparseCoding(params["d"], params["k"], seed=seed)
        rule = LinearClassifier(world.d, w=world.M @ world.w_star)
        test = world.sample(params["n"], np.random.SeedSequence([seed, 1]))
        curve = attacks.robustness_curve(rule, test.X, test.y, params["radii"], 2, "fgm")
        derived = theory.linear_failure_radius(params["k"], params["d"], norm=2)
        return {"tau50_over_derived": curve.tau50 / derived,
                "clean_accuracy": curve.clean_accuracy,
                "extra": {"radii": params["radii"], "accuracy": curve.accuracy}}


    pc.register(pc.Check(
        id="user.linear_rule_radius",
        paper="my reading of Feature Purification's linear lower bound",
        claim="The Bayes linear rule's l2 tau50 is sqrt(k/d) within a factor of 2.",
        provenance="[D]",
        regimes={"quick": {"d": 64, "k": 4, "n": 400,
                           "radii": list(np.geomspace(0.02, 2.0, 24))},
                 "full": {"d": 512, "k": 8, "n": 4000,
                          "radii": list(np.geomspace(0.01, 2.0, 48))}},
        criteria=[pc.Criterion("clean_accuracy", ">=", 0.9, "the rule must classify",
                               kind="precondition"),
                  pc.Criterion("tau50_over_derived", ">=", 0.5, "factor 2 below"),
                  pc.Criterion("tau50_over_derived", "<=", 2.0, "factor 2 above")],
        run=run), replace=True)
''')

# %%
# Save it as a module and run it exactly as on the command line:
# ``theorylab check --module my_claim.py --only user. --seeds 3 --report r.md``.
# ``replace=True`` lets a notebook cell that defines the check run again.
work = tempfile.mkdtemp()
path = os.path.join(work, "my_claim.py")
with open(path, "w") as fh:
    fh.write(CLAIM)
status = main(["check", "--module", path, "--only", "user.", "--seeds", "3", "--quiet",
               "--report", os.path.join(work, "r.md"), "--figures", work])
print("exit status", status)

# %%
# The same from Python, with the public runner; the results carry every seed's
# measurements, here the FGM curves behind the verdict.
(result,) = pc.run("user.linear_rule_radius", regime="quick", seeds=3)
print(pc.format_table([result]))

fig, ax = plt.subplots(figsize=(5, 3.6))
for seed, m in zip(result.seeds, result.measurements):
    ax.semilogx(m["extra"]["radii"], m["extra"]["accuracy"], label=f"seed {seed}")
ax.axhline(0.5, color="grey", lw=0.8)
ax.set_xlabel("l2 radius")
ax.set_ylabel("FGM robust accuracy")
ax.set_title(f"{result.check.id}: {result.verdict}")
ax.legend(fontsize=8)
fig.tight_layout()
