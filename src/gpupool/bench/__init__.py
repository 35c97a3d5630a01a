"""Benchmarks of the scheduling core (the packing benchmark lives in gpupool.packing)."""
