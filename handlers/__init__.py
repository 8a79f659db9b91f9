"""seedance-relay: Seedance 2.0 video generation as an event-driven pipeline."""

__version__ = "0.1.0"  # hatch reads it from here ([tool.hatch.version] path = "handlers/__init__.py")

__all__ = ["__version__"]
