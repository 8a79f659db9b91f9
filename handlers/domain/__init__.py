"""The relay's own model: the job and its life, events, capability tokens, the request contract."""
