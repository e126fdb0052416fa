"""Feature-build benchmarks (run with `python -m benchmarks.run`); not part of the tests."""
