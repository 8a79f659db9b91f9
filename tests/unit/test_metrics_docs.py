"""docs/metrics.md lists what the relay really writes: every Prometheus metric of its registry, every EMF figure
the metrics module writes, and every alarm on the relay's own figures in infra/resources/alarms.yml."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from handlers.app import metrics
from handlers.app.relay import Relay
from tests.support.fakes import FakeProvider, local_relay

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "metrics.md"
ALARMS = ROOT / "infra" / "resources" / "alarms.yml"
OWN_NAMESPACE = "SeedanceRelay"


def table(heading: str) -> list[list[str]]:
    """The cells of each body row of the first table under ``heading`` (a Markdown heading line), backticks
    removed."""
    lines = PAGE.read_text().splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([cell.strip().replace("`", "") for cell in line.strip("|").split(" | ")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]  # the header row is not a metric


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider())
    yield relay
    relay.close()


def test_the_prometheus_table_lists_every_metric_of_the_registry(relay: Relay) -> None:
    """Counters as exposed (``_total``), histograms and the gauges read from the stores: no more, no fewer."""
    written = {family.name + ("_total" if family.type == "counter" else "")
               for family in relay.metrics.registry.collect()}
    assert {row[0] for row in table("## `GET /metrics`")} == written


def test_the_emf_table_lists_every_figure_the_functions_write() -> None:
    source = Path(metrics.__file__).read_text()
    written = set(re.findall(r'_emit\("(\w+)"', source))
    assert written and {row[0] for row in table("## EMF on Lambda")} == written


def test_the_alarm_table_lists_every_alarm_on_the_relays_own_figures() -> None:
    """Each alarm of namespace SeedanceRelay, with the metric and statistic it watches."""
    resources = yaml.safe_load(ALARMS.read_text())["Resources"]
    watched = {f"{name} | {item['Properties']['MetricName']}, {item['Properties']['Statistic']}"
               for name, item in resources.items()
               if item["Type"] == "AWS::CloudWatch::Alarm" and item["Properties"].get("Namespace") == OWN_NAMESPACE}
    documented = {f"{row[0]} | {row[1]}" for row in table("### Alarms (`infra/resources/alarms.yml`)")}
    assert watched and documented == watched
