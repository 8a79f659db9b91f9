"""The sandbox's task engine: EvoLink's task lifecycle, on a clock you can speed up.

A task's nominal time is EvoLink-like (180 s for 10 s of 720p); ``speed`` divides it, and
the ``estimated_time`` the sandbox reports is the sped-up one, so the relay's reconciler sees
an estimate that matches what really happens. Status is derived from the clock until a
task is final: ``pending`` for the first tenth of its run, then ``processing`` with rising
progress. At the end a scheduler thread renders the result (a real MP4, cached per
duration/quality/aspect/audio), marks the task ``completed`` or ``failed`` and hands it to
the :class:`CallbackSender`. Tasks are kept as
JSON files so a restarted sandbox still answers for them.

Billing follows EvoLink's rules with the relay's price table (:mod:`handlers.domain.pricing`):
a task reserves its estimate on creation (``usage.credits_reserved``; reference videos are read
for their length), uses it on completion (``usage.credits_used``), and a failed or cancelled
task is not billed. ``quota`` is the account's credits: a create that would reserve more than
remain is refused with EvoLink's 402 ``insufficient_quota``. ``max_concurrency`` is the plan's
limit of tasks not yet final: past it a create is refused with 429 and a ``Retry-After`` of
the seconds until the earliest running task is due to end.

Result URLs name the address a task was created through, unless the engine is told where
it is served (:meth:`SandboxEngine.advertise`, as the relay's in-process sandbox does): then
every answer and callback gives them on that address, so a sandbox restarted on another
port still hands out result URLs that reach it. The signature covers task id and expiry,
not the address, so a URL stays valid wherever it is served.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import math
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from handlers.base.errors import NotFound, ProviderError, ProviderRejected
from handlers.base.logs import get_logger
from handlers.domain.contract import DEFAULTS
from handlers.domain.pricing import estimate
from handlers.net.netguard import AddressPolicy
from handlers.provider.evolink.task import new_task_id
from handlers.sandbox import media
from handlers.sandbox.callbacks import CallbackSender
from handlers.sandbox.settings import SandboxSettings
from handlers.sandbox.wrong import Render, wrong_kinds, wrong_render
from handlers.usecases.estimate import Estimator, estimate_job, reference_prober

__all__ = ["FAILURE_MESSAGES", "SandboxEngine", "SandboxTask", "estimate_seconds"]

log = get_logger(__name__)
_PROBE = reference_prober(AddressPolicy(allow_http=True, allow_private=True), timeout=5.0)  # reads what EvoLink would
_NOT_BILLED = frozenset({"failed", "cancelled"})  # failed tasks are not billed: their reservation is released
_QUALITY_FACTOR = {"480p": 0.8, "720p": 1.0, "1080p": 1.5, "4k": 2.5}
FAILURE_MESSAGES = {
    "content_policy_violation": "Content policy violation. Your request was blocked by safety filters.",
    "invalid_parameters": "Invalid request parameters.",
    "image_processing_error": "Image processing failed.",
    "image_dimension_mismatch": "Image dimensions don't match the request.",
    "request_cancelled": "Request was cancelled.",
    "generation_failed_no_content": "The model failed to generate output.",
    "service_error": "Internal service error, retry later.",
    "generation_timeout": "Task processing timed out.",
    "resource_exhausted": "Upstream resources temporarily depleted.",
    "quota_exceeded": "Rate limit or quota exceeded.",
    "service_unavailable": "Service temporarily unavailable.",
    "resource_not_found": "Task ID invalid or expired.",
    "unknown_error": "Unclassified error.",
}


def estimate_seconds(duration: int, quality: str) -> int:
    """EvoLink-like estimate: 180 s for a 10 s 720p video."""
    return int((60 + 12 * duration) * _QUALITY_FACTOR.get(quality, 1.0))


@dataclass
class SandboxTask:
    id: str
    model: str
    owner: str
    created: float
    estimated_time: int
    run_seconds: float
    duration: int
    quality: str
    aspect_ratio: str
    audio: bool
    base_url: str
    callback_url: str | None = None
    planned_failure: str | None = None
    wrong_output: str | None = None  # how the result misses the request on purpose (handlers.sandbox.wrong)
    credits: float | None = None  # reserved at creation, used on completion; None in tasks saved before billing
    status: str = "pending"
    results: list[str] = field(default_factory=list)
    media_path: str | None = None
    finished: float | None = None

    @property
    def final(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def view(self, now: float, *, base_url: str | None = None) -> dict[str, Any]:
        """The task as EvoLink shows it; ``base_url``, if given, is where its result URLs point."""
        status, progress = self._progress(now)
        body: dict[str, Any] = {
            "id": self.id, "object": "video.generation.task", "created": int(self.created),
            "model": self.model, "status": status, "progress": progress, "type": "video",
            "task_info": {"can_cancel": status == "pending", "estimated_time": self.estimated_time,
                          "video_duration": self.duration},
            "usage": self._usage(status),
        }
        if status == "completed":
            body["results"] = self.results_at(base_url)
        if status == "failed" and self.planned_failure:
            code = self.planned_failure
            body["error"] = {"code": code, "message": FAILURE_MESSAGES.get(code, code),
                             "type": "task_error"}
        return body

    def results_at(self, base_url: str | None) -> list[str]:
        """The result URLs, moved onto ``base_url`` (path and signed query kept); as made if None."""
        if base_url is None:
            return list(self.results)
        return [f"{base_url.rstrip('/')}/files/{self.id}/video.mp4?{urlsplit(url).query}" for url in self.results]

    def _progress(self, now: float) -> tuple[str, int]:
        if self.final:
            return self.status, 100 if self.status == "completed" else 0
        fraction = (now - self.created) / self.run_seconds if self.run_seconds else 1.0
        if fraction < 0.1:
            return "pending", 0
        return "processing", max(1, min(99, int(fraction * 100)))

    def _usage(self, status: str) -> dict[str, Any]:
        usage: dict[str, Any] = {"billing_rule": "per_second", "user_group": "default",
                                 "credits_reserved": self.credits}
        if status == "completed":
            usage["credits_used"] = self.credits  # a failed or cancelled task is not billed: no credits_used
        return usage

    @property
    def billed(self) -> float:
        """What the task holds of the account: its reservation, or its use; nothing once it failed."""
        return 0.0 if self.status in _NOT_BILLED else self.credits or 0.0


class SandboxEngine:
    def __init__(
        self,
        settings: SandboxSettings,
        *,
        clock: Callable[[], float] = time.time,
        sender: CallbackSender | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = random.Random(settings.seed)
        self._failures = 0
        self._wrongs = 0
        self.downloads = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._tasks: dict[str, SandboxTask] = {}
        self._due: list[tuple[float, str]] = []
        self._stopped = False
        self._advertised: str | None = None
        self._dir = settings.data_dir
        (self._dir / "tasks").mkdir(parents=True, exist_ok=True)
        self._secret = _load_secret(self._dir / "url-secret")
        self.sender = sender or CallbackSender(settings, rng=random.Random(settings.seed))
        self._estimator = Estimator(settings.prices, _PROBE)
        self._render = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-render")
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)
        self._load()

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> SandboxEngine:
        self._thread.start()
        return self

    def advertise(self, base_url: str) -> None:
        """Serve result URLs on ``base_url`` from now on, for old tasks too (see the module docstring)."""
        self._advertised = base_url.rstrip("/")

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._render.shutdown(wait=True, cancel_futures=True)
        self.sender.close()

    # API ---------------------------------------------------------------------------------
    def maybe_refuse_create(self) -> None:
        """``create_error_rate``: answer 429, 500 or 503 instead of creating a task."""
        with self._lock:
            if self._rng.random() >= self.settings.create_error_rate:
                return
            status = self._rng.choice((429, 500, 503))
        code = {429: "rate_limit_exceeded", 500: "internal_error", 503: "service_unavailable"}
        raise ProviderError(f"sandbox: injected {status}", status=status, code=code[status],
                            retry_after=1.0 if status != 500 else None)

    def create(self, request: Mapping[str, Any], *, owner: str, base_url: str) -> dict[str, Any]:
        """A new task for a valid ``request``; ``ProviderError`` 429 past ``max_concurrency``, 402 past ``quota``.

        The task reserves what the price table says the request costs, its reference videos read
        for their length as EvoLink reads them (15 s, the worst case, where they cannot be read).
        """
        credits = estimate_job(self._estimator, request).credits
        now = self._clock()
        duration = int(request.get("duration", DEFAULTS["duration"]))
        quality = str(request.get("quality", DEFAULTS["quality"]))
        nominal = estimate_seconds(duration, quality)
        estimate_time = max(1, math.ceil(nominal / self.settings.speed))
        with self._lock:
            self._admit(credits, now)
            failure = self._next_failure() if self._rng.random() < self.settings.fail_rate else None
            wrong = self._next_wrong() if failure is None and self._draw(self.settings.wrong_output_rate) else None
            task = SandboxTask(
                id=new_task_id(now), model=str(request["model"]), owner=_owner(owner),
                created=now, estimated_time=estimate_time, run_seconds=nominal / self.settings.speed,
                duration=duration, quality=quality,
                aspect_ratio=str(request.get("aspect_ratio", DEFAULTS["aspect_ratio"])),
                audio=bool(request.get("generate_audio", True)), base_url=base_url.rstrip("/"),
                callback_url=request.get("callback_url"), planned_failure=failure, wrong_output=wrong, credits=credits,
            )
            self._tasks[task.id] = task
            self._schedule(task)
        self._save(task)
        log.info("sandbox.task.created", task_id=task.id, run_seconds=round(task.run_seconds, 3), credits=credits)
        return task.view(now)

    def _admit(self, credits: float, now: float) -> None:
        """Refuse a create the plan's concurrency or the account's credits cannot take (lock held)."""
        limit, quota = self.settings.max_concurrency, self.settings.quota
        if limit is not None:
            running = [t.created + t.run_seconds for t in self._tasks.values() if not t.final]
            if len(running) >= limit:
                wait = max(1, math.ceil(min(running) - now))
                raise ProviderError(f"Too many requests: {len(running)} tasks are running, the plan allows "
                                    f"{limit} at once; try again later", status=429, code="rate_limit_exceeded",
                                    retry_after=float(wait))
        if quota is not None:
            remaining = quota - math.fsum(t.billed for t in self._tasks.values())
            if credits > remaining:
                raise ProviderError(f"Insufficient quota. Please top up your account: this task needs {credits:g} "
                                    f"credits and {max(remaining, 0.0):g} remain", status=402,
                                    code="insufficient_quota")

    def _price(self, task: SandboxTask) -> float:
        return estimate({"model": task.model, "duration": task.duration, "quality": task.quality}, [],
                        self.settings.prices).credits

    def _next_failure(self) -> str:
        """``fail_code`` may list several codes (comma-separated): they are used in turn."""
        codes = [c.strip() for c in self.settings.fail_code.split(",") if c.strip()] or ["service_error"]
        self._failures += 1
        return codes[(self._failures - 1) % len(codes)]

    def _draw(self, rate: float) -> bool:
        """A draw at ``rate``; none at all when it is 0, so seeded runs without the switch stay as they were."""
        return rate > 0 and self._rng.random() < rate

    def _next_wrong(self) -> str:
        """``wrong_output`` may list several kinds: they are used in turn."""
        kinds = wrong_kinds(self.settings.wrong_output)
        self._wrongs += 1
        return kinds[(self._wrongs - 1) % len(kinds)]

    def get(self, task_id: str, *, owner: str) -> dict[str, Any]:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found", code="task_not_found")
        if not hmac.compare_digest(task.owner, _owner(owner)):
            raise ProviderRejected("You don't have permission to access this task",
                                   status=403, code="permission_denied")
        return task.view(self._clock(), base_url=self._advertised)

    def media_for(self, task_id: str, expires: str, signature: str) -> Path:
        """The file behind a result URL, if the URL is genuine and not expired."""
        self.downloads += 1
        task = self._tasks.get(task_id)
        if task is None or task.media_path is None:
            raise NotFound("no such result")
        if not hmac.compare_digest(self._sign(task_id, expires), signature):
            raise ProviderRejected("signature does not match", status=403, code="AccessDenied")
        if float(expires) < self._clock():
            raise ProviderRejected("Request has expired", status=403, code="AccessDenied")
        return Path(task.media_path)

    # scheduling --------------------------------------------------------------------------
    def _schedule(self, task: SandboxTask) -> None:
        heapq.heappush(self._due, (task.created + task.run_seconds, task.id))
        self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and not self._ready():
                    timeout = self._due[0][0] - self._clock() if self._due else None
                    self._wake.wait(timeout=None if timeout is None else max(timeout, 0.001))
                if self._stopped:
                    return
                _, task_id = heapq.heappop(self._due)
            self._render.submit(self._finish, self._tasks[task_id])

    def _ready(self) -> bool:
        return bool(self._due) and self._due[0][0] <= self._clock()

    def _finish(self, task: SandboxTask) -> None:
        try:
            self._complete(task)
        except Exception:
            log.exception("sandbox.render.failed", task_id=task.id)
            task.planned_failure = "generation_failed_no_content"
            task.status = "failed"
        task.finished = self._clock()
        self._save(task)
        view = task.view(self._clock(), base_url=self._advertised)
        log.info("sandbox.task.final", task_id=task.id, status=task.status)
        if task.callback_url:
            self.sender.deliver(task.callback_url, view)

    def _complete(self, task: SandboxTask) -> None:
        if task.planned_failure == "cancelled":
            task.status = "cancelled"
            return
        if task.planned_failure:
            task.status = "failed"
            return
        render = wrong_render(Render(task.duration, task.quality, task.aspect_ratio, task.audio), task.wrong_output)
        if task.wrong_output is not None:
            log.info("sandbox.task.wrong_output", task_id=task.id, kind=task.wrong_output)
        path = media.render_result(duration=render.duration, quality=render.quality,
                                   aspect_ratio=render.aspect_ratio, audio=render.audio,
                                   cache_dir=self._dir / "media")
        task.media_path = str(path)
        task.results = [self._result_url(task)]
        task.status = "completed"

    def _result_url(self, task: SandboxTask) -> str:
        expires = str(int(self._clock() + self.settings.url_ttl))
        query = urlencode({"expires": expires, "sig": self._sign(task.id, expires)})
        return f"{task.base_url}/files/{task.id}/video.mp4?{query}"

    def _sign(self, task_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    # persistence -------------------------------------------------------------------------
    def _save(self, task: SandboxTask) -> None:
        path = self._dir / "tasks" / f"{task.id}.json"
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(task)), encoding="utf-8")
        os.replace(tmp, path)

    def _load(self) -> None:
        for path in sorted((self._dir / "tasks").glob("*.json")):
            task = SandboxTask(**json.loads(path.read_text(encoding="utf-8")))
            if task.credits is None:  # saved before tasks were billed: priced as a request without references
                task.credits = self._price(task)
            self._tasks[task.id] = task
            if not task.final:
                heapq.heappush(self._due, (task.created + task.run_seconds, task.id))


def _owner(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _load_secret(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(secret)
    os.replace(tmp, path)
    return path.read_bytes()
