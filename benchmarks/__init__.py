"""Performance harness of theorylab: ``python -m benchmarks`` or ``theorylab bench``.

Each ``bench_*`` module has ``run()`` returning a dict of measurements.  Speed
is always reported as ratios measured within one run (against NumPy, PyTorch
CPU when installed, and this machine's own GEMM throughput), never as absolute
thresholds in tests.
"""
