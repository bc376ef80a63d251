"""
A sweep on a Dask cluster
=========================

:func:`theorylab.sweep.run_sweep` runs every cell of a grid (here ``d`` x
seeds) into a resumable SQLite store, serially, on local processes, or on a
Dask cluster.  This example starts a small local cluster of two
single-threaded workers inside this process (``processes=False``, so that it
also runs inside the documentation build); on a real cluster give
``scheduler="tcp://host:8786"`` of a running scheduler, or run ``theorylab
sweep run spec.toml --backend dask``.  (A ``LocalCluster`` of worker
*processes* in a script needs the usual ``if __name__ == "__main__":`` guard.)  The experiment is any importable ``module:function`` taking
``(seed, params)``; here the linear rule's tau50 (a ``pipeline`` experiment
trains the networks of Feature Purification the same way).
"""

import os
import sys
import tempfile
import textwrap

import matplotlib.pyplot as plt
import numpy as np
from distributed import LocalCluster

from theorylab.sweep import parse_spec, phase_records, run_sweep

# The experiment lives in a module the workers can import (on a cluster of processes
# they inherit sys.path).
work = tempfile.mkdtemp()
with open(os.path.join(work, "linear_tau50.py"), "w") as fh:
    fh.write(textwrap.dedent('''
        import numpy as np
        from theorylab import attacks
        from theorylab.models import LinearClassifier
        from theorylab.worlds import SparseCoding

        def run(seed, params):
            world = SparseCoding(params["d"], params["k"], seed=seed)
            rule = LinearClassifier(world.d, w=world.M @ world.w_star)
            test = world.sample(300, np.random.SeedSequence([seed, 1]))
            radii = np.geomspace(0.02, 2.0, 20)
            return {"tau50": attacks.robustness_curve(rule, test.X, test.y, radii, 2,
                                                      "fgm").tau50}
    '''))
sys.path.insert(0, work)

spec = parse_spec({"sweep": {"name": "linear_tau50", "seeds": 2},
                   "experiment": {"kind": "callable", "function": "linear_tau50:run"},
                   "axes": {"d": [16, 32, 64, 128]}, "fixed": {"k": 4}})
results = os.path.join(work, "linear_tau50.sqlite")
with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                  dashboard_address=None, silence_logs=50) as cluster:
    summary = run_sweep(spec, results=results, backend="dask",
                        scheduler=cluster.scheduler_address)
print({k: summary[k] for k in ("total", "ran", "done", "failed")})

# %%
# Running it again skips the cells already done (the store is resumable); the
# records come back as dicts of parameters and metrics.
rows = phase_records(results)
ds = sorted({r["params"]["d"] for r in rows})
tau = [np.median([r["metrics"]["tau50"] for r in rows if r["params"]["d"] == d]) for d in ds]
slope = np.polyfit(np.log(ds), np.log(tau), 1)[0]
print(f"fitted exponent {slope:.2f} (derived -0.5)")

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.loglog(ds, tau, "o-", label=f"linear rule, median of 2 seeds (slope {slope:.2f})")
ax.set_xlabel("dimension d")
ax.set_ylabel("tau50 (l2)")
ax.legend(fontsize=8)
fig.tight_layout()
