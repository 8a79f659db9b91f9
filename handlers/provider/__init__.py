"""EvoLink: its client and task model, and what a valid request is (validation, prompt, probe)."""
