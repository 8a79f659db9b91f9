"""Reading a JSON object from bytes, with errors that name the field.

Every reader refuses nesting deeper than :data:`MAX_DEPTH` before ``json.loads`` runs: the
depth is measured by scanning the text (no recursion), so a body of 100,000 ``[`` is a
400 ``invalid_json``, never a ``RecursionError``. The common case costs two ``count`` calls.

``strict=True`` (request bodies a caller sends the relay) also refuses what JSON parsers
disagree on: duplicate keys, ``NaN``/``Infinity``, numbers out of a float's range, and
bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from handlers.base.errors import InvalidRequest, Violation

__all__ = ["MAX_DEPTH", "json_depth", "parse_object"]

MAX_DEPTH = 64
_TOKENS_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_TOKENS_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_JSON_TYPES: dict[type, str] = {list: "array", str: "string", bool: "boolean", type(None): "null"}
_OPENERS = frozenset({"[", "{", ord("["), ord("{")})


def _openers(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def json_depth(raw: bytes | str, *, stop_at: int | None = None) -> int:
    """The deepest nesting of arrays and objects in JSON text (brackets inside strings ignored).

    Stops counting once ``stop_at`` is exceeded. Malformed text gets a best-effort figure;
    the parser reports what is wrong with it.
    """
    pattern = _TOKENS_TEXT if isinstance(raw, str) else _TOKENS_BYTES
    depth = deepest = 0
    for match in pattern.finditer(raw):  # type: ignore[arg-type]
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_at is not None and deepest > stop_at:
                    return deepest
        else:
            depth -= 1
    return deepest


def _check_depth(raw: bytes | str, what: str, field: str) -> None:
    if _openers(raw) <= MAX_DEPTH:
        return  # cannot be deeper than the number of brackets
    if json_depth(raw, stop_at=MAX_DEPTH) > MAX_DEPTH:
        message = f"{what} nests arrays and objects more than {MAX_DEPTH} levels deep (the limit is {MAX_DEPTH})"
        raise InvalidRequest([Violation(field, "invalid_json", message)])


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:80]!r}")
        seen.add(key)
    return dict(pairs)


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest([Violation(field, "invalid_json", message)])


def _loads_strict(raw: bytes | str, what: str, field: str) -> object:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid(field, f"{what} is not UTF-8 (bad byte at offset {exc.start})") from exc
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        raise _invalid(field, f"{what} is not valid JSON at {where}: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:
        raise _invalid(field, f"{what} is not acceptable JSON: {exc}") from exc


def _loads(raw: bytes | str, what: str, field: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise _invalid(field, f"{what} is not JSON: {exc}") from exc


def parse_object(raw: bytes | str, *, what: str = "body", field: str = "$",
                 strict: bool = False) -> dict[str, Any]:
    """``raw`` as a JSON object, or ``InvalidRequest`` saying why it is not one."""
    _check_depth(raw, what, field)
    value = _loads_strict(raw, what, field) if strict else _loads(raw, what, field)
    if not isinstance(value, dict):
        message = f"{what} must be a JSON object, got {_JSON_TYPES.get(type(value), 'number')}"
        raise InvalidRequest([Violation(field, "invalid_type", message)])
    return value
