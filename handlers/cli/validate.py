"""``seedance-relay validate FILE.json [--probe] [--estimate]``: the checks ``POST /v1/jobs`` makes, offline, and
what the job would cost."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from handlers.base.errors import InvalidRequest, Violation
from handlers.domain.jobrequest import check_cancel_after, check_metadata, parse_job_request
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, Estimate, PriceTable, load_price_table
from handlers.net.netguard import AddressPolicy
from handlers.provider.probe import ProbeReport, probe_request
from handlers.provider.validation import reference_warnings, validate_request
from handlers.usecases.estimate import Estimator, estimate_job

__all__ = ["validate"]

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
_UNREADABLE = frozenset({"invalid_json", "too_large"})  # not a JSON request at all
_RELAY_SETS_CALLBACK = Violation(
    "callback_url", "set_by_relay",
    "POST /v1/jobs refuses callback_url (the relay sets its own); keep it only to call EvoLink directly")


def _emit(ok: bool, errors: list[Violation], warnings: list[Violation], **extra: Any) -> None:
    payload = {"ok": ok, "errors": [e.as_dict() for e in errors],
               "warnings": [w.as_dict() for w in warnings], **extra}
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise OSError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise OSError(f"{path}: is a folder, not a request file") from exc
    except OSError as exc:
        raise OSError(f"{path}: cannot be read ({exc.strerror})") from exc


def _estimate(body: dict[str, Any], report: ProbeReport | None, prices: PriceTable) -> Estimate:
    """The credits ``body`` should cost; reference videos as long as ``report`` read them (worst case if unread)."""
    return estimate_job(Estimator(prices, None if report is None else lambda _: report), body)


@click.command(short_help="Check a request file as POST /v1/jobs would (JSON verdict).")
@click.argument("file", type=click.Path(allow_dash=True))
@click.option("--probe", is_flag=True,
              help="Also fetch each reference's first bytes to check its real format and size.")
@click.option("--allow-http", is_flag=True, help="Accept plain http URLs (sandbox provider).")
@click.option("--allow-private", is_flag=True, help="Let the probe reach private addresses (local tests).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=20.0, show_default=True,
              help="Time budget of the probe, in seconds.")
@click.option("--estimate", "with_estimate", is_flag=True,
              help="Also print what the job would cost in credits, as POST /v1/estimates answers (with --probe, "
                   "reference videos are read for their length; else each counts at the worst case).")
@click.option("--price-table", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="RELAY_PRICE_TABLE", help="The price table to estimate with (docs/costs.md) "
                                               "[env RELAY_PRICE_TABLE, default: the built-in table].")
def validate(file: str, probe: bool, allow_http: bool, allow_private: bool, timeout: float, with_estimate: bool,
             price_table: Path | None) -> None:
    """Check a generation request (FILE, or - for stdin) as POST /v1/jobs would.

    Prints {"ok", "errors", "warnings"} as JSON (with --estimate, a valid request's "estimate":
    {"credits", "breakdown", "assumptions"} too); exits 0 when valid, 1 when invalid,
    2 when the file cannot be read or is not JSON (code unreadable or invalid_json).
    """
    prices = load_price_table(price_table) if with_estimate and price_table is not None else DEFAULT_PRICE_TABLE
    try:
        request = parse_job_request(_read(file))
    except OSError as exc:
        _emit(False, [Violation("$", "unreadable", str(exc))], [])
        sys.exit(EXIT_UNREADABLE)
    except InvalidRequest as exc:
        _emit(False, list(exc.violations), [])
        unreadable = any(v.code in _UNREADABLE for v in exc.violations)
        sys.exit(EXIT_UNREADABLE if unreadable else EXIT_INVALID)
    body = request.body
    errors: list[Violation] = (validate_request(body, allow_http=allow_http) + check_metadata(request.metadata)
                               + check_cancel_after(request.cancel_after))
    result: dict[str, Any] = {}
    report = None
    if probe and not errors:
        policy = AddressPolicy(allow_http=allow_http, allow_private=allow_private)
        report = probe_request(body, policy=policy, timeout=timeout)
        errors += report.violations
        result["media"] = [m.as_dict() for m in report.media]
    if with_estimate and not errors:
        result["estimate"] = _estimate(body, report, prices).as_dict()
    warnings = reference_warnings(body) + ([_RELAY_SETS_CALLBACK] if "callback_url" in body else [])
    _emit(not errors, errors, warnings, **result)
    sys.exit(EXIT_INVALID if errors else EXIT_VALID)
