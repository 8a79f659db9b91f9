"""Benchmarks: run ``python bench/run_all.py`` (``make bench``); see bench/README.md."""
