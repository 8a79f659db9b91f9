"""Local files named as a request's references: checked before anything is sent, then uploaded to the relay
(``POST /v1/uploads``) and replaced by the signed URLs it answers. ``submit`` and ``submit --batch`` share them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeGuard

import click
from PIL import Image

from handlers.cli.remote import RelayClient
from handlers.domain.contract import AUDIO, IMAGE, VIDEO, MediaLimits

__all__ = ["MEDIA", "checked", "checked_arrays", "digests", "uploaded", "uploaded_arrays"]

MEDIA = ((IMAGE, "--image"), (VIDEO, "--video"), (AUDIO, "--audio"))


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _check_image_size(path: Path) -> None:
    """Warn for an image under EvoLink's minimum side (read from its header, nothing decoded)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError):
        return  # unreadable as an image: the relay's checks name what is wrong
    if min(width, height) < IMAGE.min_side:
        _warn(f"{path} is {width}x{height} px; EvoLink refuses images under {IMAGE.min_side} px a side")


def _local_file(value: str, limits: MediaLimits, where: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"{value!r} is neither a URL nor a readable file", param_hint=where)
    if path.suffix.lower() not in limits.extensions:
        accepted = ", ".join(limits.extensions)
        article = "an" if limits.kind[0] in "aeiou" else "a"
        raise click.BadParameter(f"{path} is not {article} {limits.kind} file EvoLink accepts; "
                                 f"{limits.kind} files must be one of {accepted}", param_hint=where)
    if limits is IMAGE:
        _check_image_size(path)
    return path


def _is_local(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and "://" not in value


def checked(values: list[object], limits: MediaLimits, where: str) -> list[object]:
    """URLs as given, local paths checked (exist, right type, image size) and made :class:`Path`;
    ``click.BadParameter`` naming ``where`` (a flag or a field) for a path that cannot be sent."""
    return [_local_file(v, limits, where) if _is_local(v) else v for v in values]


def checked_arrays(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the local paths of its reference arrays checked and made :class:`Path`."""
    arrays = {limits.array: checked(body[limits.array], limits, limits.array)
              for limits, _ in MEDIA if isinstance(body.get(limits.array), list)}
    return {**body, **arrays}


def uploaded(client: RelayClient, values: list[object]) -> list[object]:
    """Each local file uploaded to the relay and replaced by its signed URL."""
    return [client.upload(v) if isinstance(v, Path) else v for v in values]


def uploaded_arrays(client: RelayClient, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with every local file of its reference arrays uploaded and replaced by its URL."""
    arrays = {limits.array: uploaded(client, body[limits.array])
              for limits, _ in MEDIA if isinstance(body.get(limits.array), list)}
    return {**body, **arrays}


def digests(body: dict[str, Any]) -> list[str]:
    """The sha256 of each local file ``body``'s reference arrays name, in order."""
    paths = [v for limits, _ in MEDIA for v in _array(body, limits.array) if isinstance(v, Path)]
    return [_sha256(path) for path in paths]


def _array(body: dict[str, Any], name: str) -> list[object]:
    value = body.get(name)
    return value if isinstance(value, list) else []


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
