"""The FGM length ladder: V3 and V4 at the quick regime with T_adv x 1, 2, 4, 8, 16.

* :mod:`.cells`: the sweep experiment (``ladder_cell``): one norm's V4 and V3 with
  the FGM stage's length multiplied, judged by the checks' own criteria;
* :mod:`.driver`: runs ``examples/sweeps/ladder_*.toml`` resumably, short rungs first;
* :mod:`.report`: ``reports/ladder_report.md``, ``figures/ladder_fp.png`` and
  ``reports/ladder/ladder_summary.json``, which the check report quotes.

Command line: ``python -m proofs_check.ladder`` (``make ladder``); ``--redraw``
reports from the committed CSVs.
"""

from .cells import ladder_cell

__all__ = ["ladder_cell"]
