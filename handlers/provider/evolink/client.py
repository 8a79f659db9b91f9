"""A small, careful EvoLink client over httpx.

Retry policy: 429, 502 and 503 are retried with exponential backoff and full jitter,
honouring ``Retry-After``; connection failures that happen before a request is sent are
retried too. A 429 that outlasts the attempts is a :class:`ProviderUnavailable` carrying the
last ``Retry-After`` in seconds (``retry_after``); a 402 (the account is out of credits) is a
:class:`ProviderRejected`, never retried, with EvoLink's code (``insufficient_quota``). A
``create_task`` that fails after the request may have reached EvoLink (a read timeout, a
dropped connection) is never retried: it raises :class:`UnknownOutcome` so the caller can
reconcile. ``get_task`` is safe to retry on any transport failure.
The API key goes only to EvoLink's host and never into a log.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from handlers import __version__
from handlers.base.errors import (
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    UnknownOutcome,
)
from handlers.base.logs import get_logger, register_secret
from handlers.provider.evolink.task import Task

__all__ = ["RETRYABLE_STATUSES", "USER_AGENT", "EvoLinkClient", "RetryPolicy"]

USER_AGENT = f"seedance-relay/{__version__}"
RETRYABLE_STATUSES = frozenset({429, 502, 503})
# What a status means for whoever reads the error, beside EvoLink's own message.
_HINTS = {402: "the EvoLink account has too few credits for this task, so none was created; top it up, then submit "
               "again",
          429: "EvoLink's rate or concurrency limit for this plan; retry after the time Retry-After gives"}
_SAFE_TO_RETRY = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return rand() * min(self.max_delay, self.base_delay * 2.0**attempt)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class EvoLinkClient:
    """``create_task`` and ``get_task`` against EvoLink or anything that speaks its API."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.evolink.ai",
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        register_secret(api_key)
        self._retry = retry or RetryPolicy()
        self._sleep, self._clock, self._rand = sleep, clock, rand
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def __enter__(self) -> EvoLinkClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create_task(self, body: Mapping[str, Any], *, idempotency_key: str) -> Task:
        headers = {"Idempotency-Key": idempotency_key}
        response = self._send("POST", "/v1/videos/generations", json=dict(body),
                              headers=headers, replay_safe=False)
        return Task.from_json(self._json(response))

    def get_task(self, task_id: str) -> Task:
        response = self._send("GET", f"/v1/tasks/{task_id}", replay_safe=True)
        return Task.from_json(self._json(response))

    def _send(self, method: str, path: str, *, replay_safe: bool, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            try:
                response = self._http.request(method, path, **kwargs)
            except _SAFE_TO_RETRY as exc:
                self._give_up_or_wait(last, attempt, None, f"{type(exc).__name__}: {exc}")
                continue
            except httpx.TransportError as exc:
                if not replay_safe:
                    raise UnknownOutcome(
                        f"{method} {path} failed after it was sent ({type(exc).__name__}); "
                        "the provider may or may not have acted on it"
                    ) from exc
                self._give_up_or_wait(last, attempt, None, f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code not in RETRYABLE_STATUSES or last:
                return self._checked(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            self._give_up_or_wait(last, attempt, retry_after, f"HTTP {response.status_code}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _give_up_or_wait(self, last: bool, attempt: int, retry_after: float | None,
                         reason: str) -> None:
        if last:
            raise ProviderUnavailable(f"EvoLink unreachable after {attempt + 1} attempts: {reason}")
        delay = self._retry.delay(attempt, retry_after, self._rand)
        log.info("evolink.retry", attempt=attempt + 1, delay=round(delay, 3), reason=reason)
        self._sleep(delay)

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        raise _error_from(response, self._clock())

    @staticmethod
    def _json(response: httpx.Response) -> Mapping[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderError("EvoLink answered with a body that is not JSON",
                                status=response.status_code) from exc
        if not isinstance(data, Mapping):
            raise ProviderError("EvoLink answered with JSON that is not an object",
                                status=response.status_code)
        return data


def _error_from(response: httpx.Response, now: float) -> ProviderError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    code = str(error["code"]) if error.get("code") is not None else f"http_{response.status_code}"
    message = str(error.get("message") or response.reason_phrase or "error")
    status = response.status_code
    cls = ProviderRejected if 400 <= status < 500 and status != 429 else ProviderUnavailable
    hint = f" ({_HINTS[status]})" if status in _HINTS else ""
    return cls(
        f"EvoLink {status} {code}: {message}{hint}",
        status=status,
        code=code,
        body=body if isinstance(body, Mapping) else {},
        retry_after=parse_retry_after(response.headers.get("Retry-After"), now),
    )
