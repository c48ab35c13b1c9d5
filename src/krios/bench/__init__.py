"""Benchmarks behind ``krios bench ...``: they print figures and ratios measured side by side."""
