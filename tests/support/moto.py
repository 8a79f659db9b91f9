"""moto in server mode: a real AWS-compatible endpoint over HTTP on 127.0.0.1.

``running_moto()`` starts moto's server (what the ``moto_server`` executable beside the running
Python runs, with the two changes :data:`bench._common.MOTO_LAUNCH` describes) as a subprocess on
a free loopback port, waits until it answers, yields its URL and stops it. ``FAKE_CREDENTIALS`` is
what boto3 needs to sign requests to it (moto accepts any); ``reset_moto(url)`` drops every
resource the server holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from bench._common import MOTO_LAUNCH
from handlers.net.server import free_port

__all__ = ["FAKE_CREDENTIALS", "HIDDEN", "MOTO_REGION", "reset_moto", "running_moto"]

MOTO_REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": MOTO_REGION,
    "AWS_REGION": MOTO_REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
HIDDEN = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")




def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_up(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode} before answering on {url}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto_server did not answer on {url} within {timeout}s")
        time.sleep(0.05)


@contextmanager
def running_moto(timeout: float = 30.0) -> Iterator[str]:
    """Run ``moto_server`` on ``127.0.0.1:<free port>``; yield ``http://127.0.0.1:<port>``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-c", MOTO_LAUNCH, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(process, url, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def reset_moto(url: str) -> None:
    """Forget every resource the moto server at ``url`` holds (``POST /moto-api/reset``)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10.0) as response:
        response.read()
