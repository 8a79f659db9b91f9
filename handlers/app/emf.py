"""The relay's figures as CloudWatch Embedded Metric Format lines, for the Lambda functions.

Figures are kept in memory while an invocation runs; the entry point calls ``flush()`` when
it ends, and each set of labels becomes one EMF line on stdout, written by Powertools for
AWS Lambda's metrics provider. Every line carries two dimension sets: ``[service]`` (what the
alarms in ``infra/resources/alarms.yml`` watch) and ``[service, <labels>]``. Powertools is
imported at the first flush that has something to write, never when a function module loads.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping

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
        """Print one EMF line per set of labels (more when a figure has over 100 values); how many sets."""
        with self._lock:
            figures, self._figures = self._figures, defaultdict(lambda: defaultdict(list))
        if not figures:
            return 0
        from aws_lambda_powertools.metrics import EphemeralMetrics

        for labels, metrics in figures.items():
            emf = EphemeralMetrics(namespace=self.namespace, service=self.service,
                                   default_dimensions={"service": self.service})
            if labels:
                emf.add_dimensions(**dict(labels))
            for (name, unit), values in metrics.items():
                for value in values:
                    emf.add_metric(name=name, unit=unit, value=value)
            emf.flush_metrics(raise_on_empty_metrics=True)
        return len(figures)
