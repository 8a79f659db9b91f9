"""Estimate: what a job will cost, before anything reaches EvoLink.

The price table (:mod:`handlers.domain.pricing`) needs the length of each reference video; the
preflight probe (:func:`handlers.provider.probe.probe_request`, HTTP Range requests) reads it
where the video can be fetched. A video it cannot read is billed at the worst case the rules
allow, and the estimate says which video and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.base.errors import InvalidRequest
from handlers.domain.contract import VIDEO
from handlers.domain.jobrequest import check_cancel_after, check_metadata
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, Estimate, PriceTable, estimate
from handlers.provider.validation import check_request
from handlers.usecases.references import check_references

if TYPE_CHECKING:
    from handlers.net.netguard import AddressPolicy
    from handlers.provider.probe import ProbeReport

__all__ = ["PROBE_TIMEOUT", "Estimator", "VideoProbe", "check_job_request", "estimate_for_tenant", "estimate_job",
           "estimator_for",
           "reference_lengths", "reference_policy", "reference_prober", "video_lengths"]

PROBE_TIMEOUT = 10.0  # seconds the probe of one request's reference videos may take, all together
VideoProbe = Callable[[Mapping[str, Any]], "ProbeReport"]


@dataclass(frozen=True, slots=True)
class Estimator:
    """The table to price with, and how to read reference videos (``None``: never read; worst case)."""

    prices: PriceTable = DEFAULT_PRICE_TABLE
    probe: VideoProbe | None = None


def reference_prober(policy: AddressPolicy, *, timeout: float = PROBE_TIMEOUT) -> VideoProbe:
    """A probe of a request's reference videos alone, where ``policy`` lets it go.

    The probe (and PyAV, which reads a video's length) is imported on the first call, so that
    submitting a job without reference videos, and the Lambda functions' cold start, never load it."""
    def probe(request: Mapping[str, Any]) -> ProbeReport:
        from handlers.provider.probe import probe_request

        return probe_request(request, policy=policy, timeout=timeout, kinds=(VIDEO,))

    return probe


def reference_policy(settings: Settings, own_base: str) -> AddressPolicy:
    """Where the relay may read references: public https hosts; with the sandbox, plain http and the relay's
    own address too (its uploads), as the sandbox provider accepts them."""
    from handlers.net.netguard import AddressPolicy  # httpx comes with it: not at a Lambda's cold start

    if not settings.uses_sandbox:
        return AddressPolicy()
    return AddressPolicy(allow_http=True, allowed_hosts=frozenset({urlsplit(own_base).netloc}))


def estimator_for(relay: Relay, prices: PriceTable | None = None) -> Estimator:
    """The relay's estimator: ``prices`` (default: the relay's table), and the probe under :func:`reference_policy`."""
    return Estimator(prices or relay.prices, reference_prober(reference_policy(relay.settings, relay.callback_base)))


def video_lengths(report: ProbeReport, count: int) -> tuple[list[float | None], list[str]]:
    """The length of each of ``count`` reference videos the probe read (``None`` where it could not), and why
    each unread one was not read."""
    media = {info.field: info for info in report.media}
    lengths: list[float | None] = []
    reasons: list[str] = []
    for index in range(count):
        field = f"{VIDEO.array}[{index}]"
        info = media.get(field)
        lengths.append(info.duration if info is not None else None)
        if lengths[-1] is None:
            why = next((v.message for v in report.violations if v.field == field), "it was not probed")
            reasons.append(f"{field} was not read: {why}")
    return lengths, reasons


def reference_lengths(estimator: Estimator, request: Mapping[str, Any],
                      known: Mapping[int, float] | None = None) -> tuple[list[float | None], list[str]]:
    """The length of each reference video (``None`` where unknown) and why each unknown one is: ``known`` lengths
    (earlier jobs' outputs, by index in ``video_urls``) as given, the others probed where they can be."""
    known = known or {}
    count = len(request.get(VIDEO.array) or [])
    lengths: list[float | None] = [known.get(index) for index in range(count)]
    if all(length is not None for length in lengths):
        return lengths, []
    if estimator.probe is None:
        return lengths, ["reference videos were not probed for their length"]
    try:
        probed, reasons = video_lengths(estimator.probe(request), count)
    except ImportError:  # a runtime without PyAV (the Lambda layer): the worst case, said so
        return lengths, ["reference videos cannot be probed for their length here (no PyAV)"]
    unknown = [f"{VIDEO.array}[{index}]" for index in range(count) if index not in known]
    reasons = [reason for reason in reasons if reason.split(" ", 1)[0] in unknown]
    return [known.get(index, probed[index]) for index in range(count)], reasons


def estimate_job(estimator: Estimator, request: Mapping[str, Any],
                 known: Mapping[int, float] | None = None) -> Estimate:
    """The credits a valid EvoLink ``request`` should cost: the lengths of its reference videos ``known`` (earlier
    jobs' outputs, by index in ``video_urls``) or probed where they can be."""
    if not request.get(VIDEO.array):
        return estimate(request, [], estimator.prices)
    lengths, reasons = reference_lengths(estimator, request, known)
    result = estimate(request, lengths, estimator.prices)
    return replace(result, assumptions=[*result.assumptions, *reasons])


def estimate_for_tenant(relay: Relay, estimator: Estimator, tenant: str, request: Mapping[str, Any]) -> Estimate:
    """:func:`estimate_job` for a request of ``tenant``: each ``job://`` reference to one of its jobs counted at the
    referenced video's real length (``InvalidRequest`` for a reference a submit would refuse)."""
    return estimate_job(estimator, request, check_references(relay, tenant, request).video_seconds())


def check_job_request(settings: Settings, request: object, metadata: object, cancel_after: object = None
                      ) -> dict[str, Any]:
    """A copy of ``request`` if ``POST /v1/jobs`` would accept it with ``metadata`` and ``cancel_after`` (``job://``
    references checked for their form only); else ``InvalidRequest`` with every violation, as a submit names them."""
    problems = check_metadata(metadata) + check_cancel_after(cancel_after)
    try:
        checked = check_request(request, allow_http=settings.uses_sandbox, callback="forbidden", references=True)
    except InvalidRequest as exc:
        raise InvalidRequest([*exc.violations, *problems]) from None
    if problems:
        raise InvalidRequest(problems)
    return checked
