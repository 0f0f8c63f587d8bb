"""Benchmarks of flask_maestrano's hot paths against their baselines (``make bench``)."""
