"""Measurements: each takes callables and returns plain results; none knows about the CLI."""
