"""Phase maps: where each claim holds over (d, k, training length), on the claim's own criteria.

* :mod:`.cells`: the sweep experiments (``fp_cell``, ``ll_cell``): one cell runs a
  claim's pipeline in its quick regime with d, k and the training length changed,
  and judges it with the check's own criteria;
* :mod:`.driver`: runs the ``examples/sweeps/phase_*.toml`` specs resumably, cheap
  cells first, with a progress bar and a time estimate, and exports the CSVs;
* :mod:`.regions`: per-point verdicts over seeds, regions and regime neighbours;
* :mod:`.figures`, :mod:`.report`: the committed figures and ``reports/phase_report.md``.

Command line: ``python -m proofs_check.phase`` (``make phase``); ``--redraw`` draws the
figures and the report from the committed CSVs without computing.
"""

from .cells import fp_cell, ll_cell
from .regions import points, read_rows

__all__ = ["fp_cell", "ll_cell", "points", "read_rows"]
