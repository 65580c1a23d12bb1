"""Benchmarks and the synthetic data they (and the tests) use; run from the repository root, e.g.
``python -m benchmarks.bench_build``. Not installed: the wheel holds only the ``genreslice`` package."""
