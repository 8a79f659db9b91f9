"""``seedance-relay storyboard``: run a storyboard file against a relay, rerun one of its shots, show one.

``storyboard run FILE.json`` creates every shot at once (``POST /v1/storyboards``); ``--estimate`` prints what
its shots would cost and creates nothing; ``--wait`` shows one progress line per shot until the storyboard ends
(exit 1 if it failed). ``storyboard rerun ID SHOT`` makes new jobs for that shot and every shot naming it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from handlers.base.errors import InvalidRequest
from handlers.base.jsonbody import parse_object
from handlers.cli.remote import RelayClient, relay_client

__all__ = ["storyboard"]

_ENDED = frozenset({"completed", "failed"})
_URL = click.option("--relay-url", help="The relay [env RELAY_URL, default http://127.0.0.1:8000].")
_KEY = click.option("--api-key", help="Bearer key [env RELAY_API_KEY].")
_WAIT = click.option("--wait", is_flag=True, help="Show one progress line per shot until the storyboard ends.")
_TIMEOUT = click.option("--timeout", type=click.FloatRange(min=1), default=3600.0, show_default=True,
                        help="Seconds --wait waits at most.")


def _read(file: Path) -> dict[str, Any]:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"{file}: cannot be read ({exc.strerror})", param_hint="FILE") from exc
    try:
        return parse_object(raw, what=str(file), strict=True)
    except InvalidRequest as exc:
        raise click.BadParameter(f"{file} is not a storyboard: {exc.violations[0].message}",
                                 param_hint="FILE") from exc


@click.group(short_help="Shots that build on earlier shots, joined into one video.")
def storyboard() -> None:
    """Storyboards: shots that build on earlier shots, joined into one video."""


@storyboard.command("run", short_help="Create every shot of a storyboard file at once.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--estimate", is_flag=True, help="Print what the shots would cost; create nothing.")
@click.option("--idempotency-key", help="Running the same file again with this key finds the same storyboard.")
@_WAIT
@_TIMEOUT
@_URL
@_KEY
def run(file: Path, estimate: bool, idempotency_key: str | None, wait: bool, timeout: float, relay_url: str | None,
        api_key: str | None) -> None:
    """Create every shot of the storyboard in FILE (JSON: shots, assemble, metadata)."""
    body = _read(file)
    client = relay_client(relay_url, api_key)
    try:
        if estimate:
            _show_estimate(client.call("POST", "/v1/storyboards/estimates", json=body))
            return
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        view = client.call("POST", "/v1/storyboards", json=body, headers=headers)
        click.echo(f"storyboard {view['id']}: {len(view['shots'])} shots")
        if wait:
            _finish(_wait(client, view["id"], timeout))
    finally:
        client.close()


@storyboard.command("rerun", short_help="New jobs for one shot and the shots naming it.")
@click.argument("storyboard_id")
@click.argument("shot")
@_WAIT
@_TIMEOUT
@_URL
@_KEY
def rerun(storyboard_id: str, shot: str, wait: bool, timeout: float, relay_url: str | None,
          api_key: str | None) -> None:
    """Rerun SHOT of STORYBOARD_ID: new jobs for it and every shot naming it, then join them again."""
    client = relay_client(relay_url, api_key)
    try:
        view = client.call("POST", f"/v1/storyboards/{storyboard_id}/shots/{shot}/rerun")
        renewed = [s["id"] for s in view["shots"] if s["status"] != "published"]
        click.echo(f"storyboard {view['id']} revision {view['revision']}: new jobs for {', '.join(renewed)}")
        if wait:
            _finish(_wait(client, storyboard_id, timeout))
    finally:
        client.close()


@storyboard.command("show")
@click.argument("storyboard_id")
@_URL
@_KEY
def show(storyboard_id: str, relay_url: str | None, api_key: str | None) -> None:
    """Print the storyboard as JSON (its newest revision)."""
    client = relay_client(relay_url, api_key)
    try:
        click.echo(json.dumps(client.call("GET", f"/v1/storyboards/{storyboard_id}"), indent=2))
    finally:
        client.close()


def _show_estimate(answer: dict[str, Any]) -> None:
    click.echo(f"{answer['credits']:g} credits for {len(answer['shots'])} shots (estimate; nothing was created)")
    for shot in answer["shots"]:
        click.echo(f"  {shot['id']}: {shot['credits']:g}")


def _label(shot: dict[str, Any]) -> str:
    return f"{shot['id']:<16} {shot['status']}"


def _wait(client: RelayClient, storyboard_id: str, timeout: float) -> dict[str, Any]:
    """Poll the storyboard, one progress line per shot, until it ends or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        lines: dict[str, TaskID] = {}
        while True:
            view: dict[str, Any] = client.call("GET", f"/v1/storyboards/{storyboard_id}")
            for shot in view["shots"]:
                line = lines.get(shot["id"]) or progress.add_task(_label(shot), total=100)
                lines[shot["id"]] = line
                done = 100 if shot["status"] in ("stored", "published") else shot.get("progress") or 0
                progress.update(line, completed=done, description=_label(shot))
            if view["status"] in _ENDED:
                return view
            if time.monotonic() > deadline:
                raise click.ClickException(f"storyboard {storyboard_id} is still {view['status']} after "
                                           f"{timeout:g} s (--timeout)")
            time.sleep(0.5)


def _finish(view: dict[str, Any]) -> None:
    for shot in view["shots"]:
        code = f" ({shot['error']['code']})" if shot.get("error") else ""
        click.echo(f"  {shot['id']}: {shot['status']}{code} {shot['job_id']}")
    if view["status"] == "failed":
        error = view.get("error") or {}
        raise click.ClickException(f"storyboard {view['id']} failed: shot {error.get('shot')} "
                                   f"({error.get('code')}): {error.get('message')}")
    for output in view["outputs"]:
        media = output.get("media") or {}
        how = (media.get("assembly") or {}).get("method", "")
        click.echo(f"assembled: {output['url']} ({media.get('duration', '?')} s, {how})")
    click.echo(f"storyboard {view['id']} completed; {view['credits']['used']:g} credits used")
