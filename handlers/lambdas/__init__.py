"""Lambda entry points. Each module imports little; the relay is built once per container, on first use."""
