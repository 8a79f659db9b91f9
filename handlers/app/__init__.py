"""Wiring: settings, the Relay bundle handed to use cases, building it, the local runtime, metrics."""
