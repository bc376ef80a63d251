"""
Certified versus attacked robust accuracy
=========================================

An attack can only show that a point is *not* robust; a certificate can only
show that it *is*.  :func:`theorylab.evaluate.robustness` runs both on every
point and radius and reports the sandwich

    certified accuracy <= exact accuracy <= attacked accuracy,

with the points neither side settles counted as *unresolved*.  Here a small
clean-trained network in linf, where the certificate (alpha-CROWN for the
threshold network) and the exact solver (a MILP) are available.
"""

import matplotlib.pyplot as plt

from theorylab.evaluate import robustness
from theorylab.models import TwoLayerReLU
from theorylab.training import ThresholdSchedule, train
from theorylab.worlds import SparseCoding

world = SparseCoding(16, 2, seed=0)
net = TwoLayerReLU.for_world(world, seed=0)
train(net, world, steps=200, schedule=ThresholdSchedule(1.0, 0.5, 100), seed=0)
test = world.sample(60, 1)
grid = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
bounds = robustness(net, test.X, test.y, grid, "inf", certify=True, world=world)
for e, a, c, u in zip(bounds.eps, bounds.attack_accuracy, bounds.certified_accuracy,
                      bounds.unresolved):
    print(f"eps {e:.2f}: certified {c:.3f} <= attacked {a:.3f}   unresolved {u}")

# %%
# The exact solver settles the unresolved points: with ``exact=True`` the two sides
# meet, and the exact accuracy lies between the bounds found above.
exact = robustness(net, test.X, test.y, grid, "inf", certify=True, exact=True, world=world)
for e, x, u in zip(exact.eps, exact.exact_accuracy, exact.unresolved):
    print(f"eps {e:.2f}: exact {x:.3f}   unresolved {u}")

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.plot(bounds.eps, bounds.attack_accuracy, "o-", label="attacked (upper bound)")
ax.plot(bounds.eps, bounds.certified_accuracy, "s--", label="certified (lower bound)")
ax.fill_between(bounds.eps, bounds.certified_accuracy, bounds.attack_accuracy, alpha=0.2,
                label="unresolved")
ax.plot(exact.eps, exact.exact_accuracy, "k:", label="exact (MILP)")
ax.set_xlabel("linf radius")
ax.set_ylabel("robust accuracy")
ax.legend(fontsize=8)
fig.tight_layout()
