"""Load benchmark of the gateway: `python -m bench.run` (see BENCHMARKS.md)."""
