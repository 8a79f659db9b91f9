"""Watching the operations a boto3 client makes, through botocore's own event hook."""

from __future__ import annotations

from typing import Any

__all__ = ["Calls"]


class Calls:
    """The operations a boto3 client makes and their arguments, seen through botocore's own event hook."""

    def __init__(self, client: Any) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register_first("provide-client-params", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.made]

    def clear(self) -> None:
        self.made.clear()
