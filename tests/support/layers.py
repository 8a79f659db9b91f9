"""What each Lambda function of serverless.yml can import on AWS: the packages of its layers.

A function's layers are its own ``layers:`` list, else the provider's (a function's list replaces the
provider's, as on AWS). Each layer ``NAME`` of serverless.yml is ``NameLambdaLayer`` in the template and is
built by infra/build-layer.sh from its requirements file below. A runtime dependency of the project
(pyproject.toml) that none of a function's layers pins is not there: :func:`hidden_for` names the modules a
test hides to import as that function would.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["LAYER_REQUIREMENTS", "ROOT", "LambdaFunction", "functions", "hidden_for", "layer_packages",
           "runtime_dependencies"]

ROOT = Path(__file__).resolve().parents[2]
LAYER_REQUIREMENTS = {"deps": ROOT / "infra" / "layer-requirements.txt",
                      "media": ROOT / "infra" / "media-layer-requirements.txt"}


@dataclass(frozen=True)
class LambdaFunction:
    name: str
    module: str  # handlers/lambdas/api.handler -> handlers.lambdas.api
    layers: tuple[str, ...]  # layer names of serverless.yml (deps, media)


def _serverless() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
    return loaded


def _layer_name(reference: Any) -> str:
    """``{"Ref": "MediaLambdaLayer"}`` -> ``media``."""
    logical_id = reference["Ref"] if isinstance(reference, dict) else None
    if not isinstance(logical_id, str) or not logical_id.endswith("LambdaLayer"):
        raise ValueError(f"a layer must be a Ref to a layer of this service, got {reference!r}")
    return logical_id.removesuffix("LambdaLayer").lower()


def functions() -> dict[str, LambdaFunction]:
    """Every function of serverless.yml with its entry module and its layers."""
    config = _serverless()
    default = config["provider"].get("layers", [])
    found = {}
    for name, spec in config["functions"].items():
        module = spec["handler"].rpartition(".")[0].replace("/", ".")
        layers = tuple(_layer_name(r) for r in spec.get("layers", default))
        found[name] = LambdaFunction(name, module, layers)
    return found


def _names(requirements: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text(encoding="utf-8").splitlines())
    return {_normal(line) for line in lines if line}


def _normal(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def layer_packages(layer: str) -> set[str]:
    """The distributions ``layer``'s requirements file pins (normalised names)."""
    return _names(LAYER_REQUIREMENTS[layer])


def runtime_dependencies() -> set[str]:
    """The distributions pyproject.toml's ``[project] dependencies`` name (normalised)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_normal(dependency) for dependency in project["dependencies"]}


def hidden_for(function: LambdaFunction) -> set[str]:
    """Top-level modules of the runtime dependencies that none of ``function``'s layers ships."""
    shipped = set().union(*(layer_packages(layer) for layer in function.layers))
    return {name.replace("-", "_") for name in runtime_dependencies() - shipped}
