"""The papers' pipelines as public functions with keyed, declared, cached stages.

* :mod:`theorylab.pipelines.feature_purification`: world -> clean network -> FGM
  from the clean weights -> purified oracle -> test set (:func:`fp_run`);
* :mod:`theorylab.pipelines.li_li`: patch world -> standard CNN -> adversarially
  trained CNN (:func:`standard_run`, :func:`adversarial_run`);
* :mod:`theorylab.pipelines.lower_bounds`: the low-complexity learners by name.

The theorem checks, the sweeps, the figures and users' scripts call these, so a
script given a check's regime and seed reproduces the check's networks bit for
bit.  Every stage is cached per process under its parameters, seed and code
version; :func:`clear` forgets them all.
"""

from __future__ import annotations

from . import feature_purification, li_li, lower_bounds
from ._stages import Stage, cached_keys, clear
from .feature_purification import FPRun, fp_base, fp_clean, fp_run
from .li_li import adversarial_run, standard_run

__all__ = ["Stage", "clear", "cached_keys", "FPRun", "fp_clean", "fp_base", "fp_run",
           "standard_run", "adversarial_run", "feature_purification", "li_li", "lower_bounds"]
