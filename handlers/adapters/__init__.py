"""Adapters behind the ports in :mod:`handlers.ports`.

``handlers.adapters.local`` holds the embedded defaults (SQLite files and a folder on
disk: zero set-up, durable, safe with several worker threads and processes). Each
adapter translates its vendor's errors into :mod:`handlers.base.errors` at its boundary.
"""
