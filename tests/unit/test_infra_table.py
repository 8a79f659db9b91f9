"""The jobs table that ``infra/`` deploys is the table the DynamoDB adapter queries (:data:`TABLE_SPEC`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from handlers.adapters.aws.jobs import TABLE_SPEC

STORAGE = Path(__file__).resolve().parents[2] / "infra" / "resources" / "storage.yml"


def _deployed() -> dict[str, Any]:
    resources = yaml.safe_load(STORAGE.read_text(encoding="utf-8"))["Resources"]
    table: dict[str, Any] = resources["JobsTable"]["Properties"]
    return table


def _indexes(spec: dict[str, Any] | Any) -> dict[str, Any]:
    return {index["IndexName"]: (index["KeySchema"], index["Projection"]) for index in spec["GlobalSecondaryIndexes"]}


def test_the_deployed_indexes_have_the_keys_the_adapter_queries() -> None:
    assert _indexes(_deployed()) == _indexes(TABLE_SPEC)


def test_the_deployed_table_declares_the_same_attributes_and_key() -> None:
    deployed = _deployed()
    assert sorted(map(str, deployed["AttributeDefinitions"])) == sorted(map(str, TABLE_SPEC["AttributeDefinitions"]))
    assert deployed["KeySchema"] == TABLE_SPEC["KeySchema"]
    assert deployed["BillingMode"] == TABLE_SPEC["BillingMode"]
    assert deployed["TimeToLiveSpecification"] == TABLE_SPEC["TimeToLiveSpecification"]
