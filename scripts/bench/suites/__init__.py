"""Benchmark suites; importing this package registers them all (see registry.py).

To add a suite: a module here with `@suite("name", "what it measures")` on a function
`ctx -> list[Case]`, imported below. Model and framework imports go inside the function.
"""
from scripts.bench.suites import compile_time, forward, load  # noqa: F401  (registration order)
from scripts.bench.suites import generate, train, ports  # noqa: F401
