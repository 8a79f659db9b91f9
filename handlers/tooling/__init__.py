"""Doc tooling: generated reference pages and event schemas."""
