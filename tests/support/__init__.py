"""Support code for the tests and the benchmarks: test embedders and tiny models, not part of the package."""
