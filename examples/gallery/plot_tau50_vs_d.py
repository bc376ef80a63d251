"""
tau50 against d: fitting the exponent
=====================================

Feature Purification's lower bounds say how the radius at which a model stops
being robust scales with the dimension ``d``.  For a linear rule in l2 the
derived prediction is :func:`theorylab.theory.linear_failure_radius`,
``sqrt(k / d)``: slope -1/2 on log-log axes.  Here we measure ``tau50`` (the
radius where robust accuracy falls to 50%) of a clean-trained two-layer
network and of the Bayes linear rule ``M w*`` for a few ``d``, and fit the
exponent by least squares on the logs.

At these toy sizes (``d`` up to 64, 200 training steps) the linear rule's
exponent already matches the derived -1/2; the clean network's does not yet
show an asymptotic law.  The ``lb.*`` checks judge the exponents in their own
regimes (``theorylab check --only lb.``).
"""

import matplotlib.pyplot as plt
import numpy as np

from theorylab import attacks, theory
from theorylab.models import LinearClassifier, TwoLayerReLU
from theorylab.training import ThresholdSchedule, train
from theorylab.worlds import SparseCoding

k, steps = 2, 200
ds = [16, 32, 64]
radii = np.geomspace(0.02, 3.0, 16)
tau_net, tau_lin = [], []
for d in ds:
    world = SparseCoding(d, k, seed=0)
    net = TwoLayerReLU.for_world(world, seed=0)
    train(net, world, steps=steps, schedule=ThresholdSchedule(1.0, 0.5, steps // 2), seed=0)
    test = world.sample(300, 1)
    curve = attacks.robustness_curve(net, test.X, test.y, radii, 2, "pgd", steps=10)
    tau_net.append(curve.tau50)
    linear = LinearClassifier(d, w=world.M @ world.w_star)
    tau_lin.append(attacks.robustness_curve(linear, test.X, test.y, radii, 2, "fgm").tau50)
    print(f"d={d:3d}  clean network tau50 {curve.tau50:.3f}   linear rule tau50 "
          f"{tau_lin[-1]:.3f}")

# %%
# The fit: the slope of log tau50 against log d.
slope_net = np.polyfit(np.log(ds), np.log(tau_net), 1)[0]
slope_lin = np.polyfit(np.log(ds), np.log(tau_lin), 1)[0]
print(f"fitted exponents: clean network {slope_net:.2f}, linear rule {slope_lin:.2f} "
      "(derived for the linear rule: -0.5)")

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.loglog(ds, tau_net, "o-", label=f"clean network (slope {slope_net:.2f})")
ax.loglog(ds, tau_lin, "s-", label=f"linear rule M w* (slope {slope_lin:.2f})")
pred = [theory.linear_failure_radius(k, d, norm=2) for d in ds]
ax.loglog(ds, pred, "k--", label="derived sqrt(k/d) (slope -0.5)")
ax.set_xlabel("dimension d")
ax.set_ylabel("tau50 (l2)")
ax.legend(fontsize=8)
fig.tight_layout()
