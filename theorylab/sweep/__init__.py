"""Sweeps: grids of experiments on all cores or on a Dask cluster, into a resumable store.

A TOML spec (:func:`load_spec`) names an experiment (a theorem check of
:mod:`proofs_check`, the train-then-attack :func:`~.experiments.pipeline`, or a
user's function), its axes, seeds and fixed parameters.  :func:`run_sweep`
expands it into cells, each with a seed derived from its own parameters, runs
the cells that are not done yet on the ``serial``, ``processes`` or ``dask``
backend (same bits on all three), and commits each result to an SQLite
:class:`Store` as it finishes.  The command line is ``theorylab sweep`` (or
``python -m theorylab.sweep``).
"""

from .runner import default_results_path, run_sweep
from .spec import Cell, Spec, cell_seed, load_spec, parse_spec
from .store import Store, phase_records

__all__ = ["run_sweep", "load_spec", "parse_spec", "Spec", "Cell", "cell_seed", "Store",
           "phase_records", "default_results_path"]
