"""Scaling paths: the Feature Purification claims along k = round(c d^gamma), d = 64 ... 1024.

* :mod:`.paths`: the path rule k(d) and its validation;
* :mod:`.cells`: the sweep experiment (``scaling_cell``): a phase-map cell of one norm
  at (d, k(d)), judged by the checks' own criteria, plus the FGM network's tau50;
* :mod:`.driver`: runs ``examples/sweeps/scaling_*.toml`` resumably, cheap d first;
* :mod:`.fits`: per quantity and norm, the exponent fitted over seeds
  (:func:`theorylab.theory.fit_exponent`) against the spec's derived exponent;
* :mod:`.figures`, :mod:`.report`: ``figures/scaling_*.png`` and
  ``reports/scaling_report.md``.

Command line: ``python -m proofs_check.scaling`` (``make scaling``, ``theorylab check
--scaling``); ``--redraw`` fits, draws and reports from the committed CSVs.
"""

from .cells import scaling_cell
from .paths import path_k

__all__ = ["scaling_cell", "path_k"]
