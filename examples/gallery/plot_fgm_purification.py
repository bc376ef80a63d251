"""
Does FGM training purify?
=========================

The Feature Purification pipeline (:mod:`theorylab.pipelines`): train a
two-layer network cleanly, continue from its weights with FGM adversarial
training, and compare both with the purified oracle (one neuron per atom).
The purification principle says the clean weights are the adversarial ones
plus a small dense part: ``w_i = beta_i w'_i + v_i`` with
``||beta_i w'_i|| > ||v_i||`` (:func:`theorylab.metrics.purification`).
"""

import matplotlib.pyplot as plt
import numpy as np

from theorylab import attacks, metrics
from theorylab.pipelines import fp_run
from theorylab.plots.fp import robustness_curves

params = dict(d=32, k=3, codes="pm1", noise=0.05, dictionary="identity", width_mult=2,
              init_scale=None, c0=1.0, c1=0.5, ramp_frac=0.5, lr=0.5, batch=128, T=300,
              T_adv=150, norm=2, eps_train=0.3, n_test=300)
run = fp_run(0, params)

# %%
# The purification report: the fraction of neurons whose clean weight is mostly
# the adversarially trained one, and the dense structure before and after.
report = metrics.purification(run.clean.W, run.adv.W)
print(f"principle holds for {report['fraction']:.0%} of neurons "
      f"(median ratio {np.median(report['ratio']):.2f})")
for name, net in (("clean", run.clean), ("FGM-trained", run.adv), ("oracle", run.oracle)):
    s = metrics.summarize(net.W, run.world.w_star)
    print(f"{name:12s} clean accuracy {net.accuracy(run.test.X, run.test.y):.3f}  "
          f"dense ratio median {s['dense_ratio']:.3f}")

# %%
# Robust accuracy under PGD: adversarial training moves the curve towards the oracle's.
grid = [0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8]
curves = {name: attacks.robustness_curve(net, run.test.X, run.test.y, grid, 2, "pgd",
                                         steps=10).accuracy
          for name, net in (("clean", run.clean), ("FGM-trained", run.adv),
                            ("oracle", run.oracle))}
fig, ax = plt.subplots(figsize=(5, 3.6))
robustness_curves(grid, curves, norm="l2", ax=ax, title="d = 32, k = 3 (toy size)")
fig.tight_layout()
