"""EvoLink's task object, read tolerantly.

Unknown fields are kept in ``raw`` and otherwise ignored; ``error.code`` may arrive as a
string or an integer; ``cancelled`` and ``failed`` + ``request_cancelled`` both mean
cancellation.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.domain.lifecycle import Outcome

__all__ = ["OUTCOMES", "Task", "TaskError", "is_task_id", "new_task_id"]

OUTCOMES = (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED)
"""The outcomes a task can end with (``expired`` and ``rejected`` are the relay's own)."""
_TASK_ID = re.compile(r"^task-unified-\d+-[A-Za-z0-9]+$")
_ALPHABET = string.ascii_lowercase + string.digits


def is_task_id(value: str) -> bool:
    return bool(_TASK_ID.match(value))


def new_task_id(now: float) -> str:
    """A fresh id in EvoLink's shape: ``task-unified-<unix seconds>-<8 chars>``."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"task-unified-{int(now)}-{suffix}"


@dataclass(frozen=True, slots=True)
class TaskError:
    code: str
    message: str = ""
    type: str | None = None

    @classmethod
    def from_json(cls, data: object) -> TaskError | None:
        if not isinstance(data, Mapping):
            return None
        code = data.get("code")
        return cls(
            code=str(code) if code is not None else "unknown_error",
            message=str(data.get("message") or ""),
            type=str(data["type"]) if data.get("type") is not None else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "type": self.type}


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class Task:
    """One generation task as EvoLink reports it."""

    id: str
    status: str
    progress: int = 0
    model: str | None = None
    created: int | None = None
    results: tuple[str, ...] = ()
    error: TaskError | None = None
    estimated_time: int | None = None
    video_duration: int | None = None
    credits_reserved: float | None = None
    credits_used: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        info, usage = _mapping(data.get("task_info")), _mapping(data.get("usage"))
        results = data.get("results")
        return cls(
            id=str(data.get("id") or ""),
            status=str(data.get("status") or "pending").lower(),
            progress=max(0, min(100, _int(data.get("progress")) or 0)),
            model=str(data["model"]) if data.get("model") else None,
            created=_int(data.get("created")),
            results=tuple(str(u) for u in results if isinstance(u, str))
            if isinstance(results, list)
            else (),
            error=TaskError.from_json(data.get("error")),
            estimated_time=_int(info.get("estimated_time")),
            video_duration=_int(info.get("video_duration")),
            credits_reserved=_number(usage.get("credits_reserved")),
            credits_used=_number(usage.get("credits_used")),
            raw=dict(data),
        )

    @property
    def outcome(self) -> Outcome | None:
        """``completed``, ``failed`` or ``cancelled`` once the task is final; else ``None``."""
        if self.status in ("cancelled", "canceled"):
            return Outcome.CANCELLED
        if self.status == "failed":
            cancelled = self.error is not None and self.error.code == "request_cancelled"
            return Outcome.CANCELLED if cancelled else Outcome.FAILED
        if self.status == "completed":
            return Outcome.COMPLETED
        return None

    @property
    def is_final(self) -> bool:
        return self.outcome is not None
