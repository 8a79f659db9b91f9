"""``seedance-relay validate FILE.json [--probe]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from handlers.errors import Violation
from handlers.netguard import AddressPolicy
from handlers.probe import probe_request
from handlers.validation import reference_warnings, validate_request

__all__ = ["validate"]

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def _read(path: str) -> object:
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return json.loads(raw)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--probe", is_flag=True, help="Also fetch each reference's headers and first bytes "
              "to check real format, size, dimensions, duration and fps.")
@click.option("--allow-http", is_flag=True, help="Accept plain http URLs (sandbox provider).")
@click.option("--allow-private", is_flag=True,
              help="Let the probe reach private and loopback addresses (local testing only).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=20.0, show_default=True,
              help="Overall time budget of the probe, in seconds.")
def validate(file: str, probe: bool, allow_http: bool, allow_private: bool, timeout: float) -> None:
    """Check a generation request against EvoLink's rules.

    Prints {"ok", "errors", "warnings"} as JSON; exits 0 when valid, 1 when invalid,
    2 when the file cannot be read.
    """
    try:
        body = _read(file)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _emit({"ok": False, "errors": [{"field": "$", "code": "unreadable", "message": str(exc)}]})
        sys.exit(EXIT_UNREADABLE)
    errors: list[Violation] = validate_request(body, allow_http=allow_http)
    result: dict[str, Any] = {}
    if probe and not errors and isinstance(body, dict):
        policy = AddressPolicy(allow_http=allow_http, allow_private=allow_private)
        report = probe_request(body, policy=policy, timeout=timeout)
        errors += report.violations
        result["media"] = [m.as_dict() for m in report.media]
    warnings = reference_warnings(body) if isinstance(body, dict) else []
    _emit({"ok": not errors, "errors": [e.as_dict() for e in errors],
           "warnings": [w.as_dict() for w in warnings], **result})
    sys.exit(EXIT_INVALID if errors else EXIT_VALID)
