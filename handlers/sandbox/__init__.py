"""The sandbox: an EvoLink look-alike for local runs, tests and demos."""
