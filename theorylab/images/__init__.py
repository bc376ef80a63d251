"""The papers' image experiments on real images, at CPU scale.

Feature Purification's CIFAR-10 measurements (the purification principle on
first-layer weights, low-rank adversarial fine-tuning) and Li & Li's
robust / non-robust feature datasets, on any :mod:`theorylab.datasets` image
set; by default scikit-learn's shipped 8x8 digits, so they run anywhere.

Modules: :mod:`.data` (tasks, patches), :mod:`.fit` (full-batch GD, clean,
adversarial or low-rank), :mod:`.ilyas` (D_R and D_NR), :mod:`.experiments`.
"""

from .data import ImageTask, from_patches, make_task, to_patches
from .experiments import (DEFAULTS, REGIMES, check_params, load_task, low_rank_experiment,
                          make_learner, purification_experiment, robust_nonrobust_experiment)
from .fit import LowRank, fit, single_threaded
from .ilyas import non_robust_dataset, representation, robust_dataset, targeted_pgd

__all__ = ["ImageTask", "make_task", "to_patches", "from_patches", "fit", "LowRank",
           "single_threaded", "representation", "robust_dataset", "non_robust_dataset",
           "targeted_pgd", "DEFAULTS", "REGIMES", "check_params", "load_task", "make_learner",
           "purification_experiment", "low_rank_experiment", "robust_nonrobust_experiment"]
