"""An example downstream consumer: logs each finished video's location.

Subscribed to the relay's topic with a filter on completed events; copy it as a starting point.
"""

from __future__ import annotations

from handlers.base.logs import get_logger
from handlers.consumer import CloudEvent, EventConsumer

__all__ = ["handler", "on_completed"]

log = get_logger("example_consumer")


def on_completed(event: CloudEvent) -> None:
    for output in event.data.get("outputs", []):
        log.info("video.ready", job_id=event.subject, uri=output.get("uri"), size=output.get("size"),
                 sha256=output.get("sha256"), metadata=event.data.get("metadata"))


handler = EventConsumer(on_completed, types={"io.seedance-relay.job.completed"})
