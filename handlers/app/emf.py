"""The relay's figures as CloudWatch Embedded Metric Format lines, for the Lambda functions.

Figures are kept in memory while an invocation runs; the entry point calls ``flush()`` when
it ends. Each set of labels becomes one metric directive, serialized by Powertools for AWS
Lambda's metrics provider, with two dimension sets: ``[service]`` (what the alarms in
``infra/resources/alarms.yml`` watch) and ``[service, <labels>]``. Directives whose labels agree
(no label with two values, no metric named twice) share one EMF line, as the format allows, so an
invocation usually writes one line instead of one per label set: CloudWatch bills these lines as
log bytes. Powertools is imported at the first flush that has something to write, never when a
function module loads.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_NAMESPACE", "DEFAULT_SERVICE", "EmfBuffer"]

DEFAULT_NAMESPACE = "SeedanceRelay"
DEFAULT_SERVICE = "seedance-relay"
Labels = tuple[tuple[str, str], ...]


class EmfBuffer:
    """Figures of one invocation, grouped by labels; ``flush()`` prints them and starts over."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE, service: str = DEFAULT_SERVICE) -> None:
        self.namespace, self.service = namespace, service
        self._lock = threading.Lock()
        self._figures: dict[Labels, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, name: str, unit: str, value: float, labels: Mapping[str, str]) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            values = self._figures[key][name, unit]
            if unit == "Count" and values:
                values[0] += value  # counts are summed; timings and sizes keep every value
            else:
                values.append(float(value))

    def flush(self) -> int:
        """Print the invocation's figures as EMF lines (label sets that agree share a line); how many sets."""
        with self._lock:
            figures, self._figures = self._figures, defaultdict(lambda: defaultdict(list))
        if not figures:
            return 0
        from aws_lambda_powertools.metrics import EphemeralMetrics

        lines: list[dict[str, Any]] = []
        for labels, metrics in figures.items():
            emf = EphemeralMetrics(namespace=self.namespace, service=self.service,
                                   default_dimensions={"service": self.service})
            if labels:
                emf.add_dimensions(**dict(labels))
            for (name, unit), values in metrics.items():
                for value in values:
                    emf.add_metric(name=name, unit=unit, value=value)
            if any(len(values) > MAX_VALUES for values in metrics.values()):
                emf.flush_metrics(raise_on_empty_metrics=True)  # Powertools splits it over several lines
                continue
            _merge(lines, dict(emf.serialize_metric_set()))
        for line in lines:
            print(json.dumps(line, separators=(",", ":")), file=sys.stdout, flush=True)
        return len(figures)


MAX_VALUES = 100
"""The most values one metric may carry in one EMF line."""


def _merge(lines: list[dict[str, Any]], document: dict[str, Any]) -> None:
    """Add ``document`` (one directive) to the first line that names none of its metrics and gives none of its
    dimensions another value; else start a new line with it."""
    directives = document["_aws"]["CloudWatchMetrics"]
    metrics = {m["Name"] for d in directives for m in d["Metrics"]}
    fields = {k: v for k, v in document.items() if k != "_aws"}
    for line in lines:
        if any(name in line for name in metrics):
            continue
        if all(line.get(key, value) == value for key, value in fields.items() if key not in metrics):
            line.update(fields)
            line["_aws"]["CloudWatchMetrics"].extend(directives)
            return
    lines.append(document)
