"""Generated documentation: the API reference, the event catalogue, the job's life and EvoLink's limits.

Each page is rendered from the code that defines it, so the docs cannot drift:

    docs/api.md            from the OpenAPI document (``handlers.api.openapi``)
    docs/events.md         from ``handlers.domain.events`` and ``handlers.tooling.event_schemas``
    docs/schemas/*.json    one JSON Schema per event type
    docs/lifecycle.md      from the lifecycle table (``handlers.domain.lifecycle``)

and the blocks between markers in hand-written pages (``BLOCKS``):

    docs/evolink.md        the ``limits`` block, from ``handlers.domain.contract``
    README.md              the ``states`` block (the state diagram), from ``handlers.domain.lifecycle``

``generate(root, check=True)`` writes nothing and lists what is stale; the test suite runs it
so a change to the code without ``seedance-relay docs generate`` fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.api.openapi import openapi_document
from handlers.app.settings import configuration_table
from handlers.domain.events import AT_RISK, EVENT_TYPES, OUTCOME_TYPES, TYPE_PREFIX, build_at_risk_event, build_event
from handlers.domain.jobs import Job, JobStatus, Outcome, Output, derive_job_id, request_fingerprint, rfc3339
from handlers.tooling import lifecycle_docs, limits_docs
from handlers.tooling.event_schemas import all_event_schemas, event_schema
from handlers.tooling.markdown import GENERATED, cell, code, slug, table
from handlers.tooling.storyboard_schemas import STORYBOARD_EVENT_TYPES, example_storyboard_event

__all__ = ["BLOCKS", "LIMITS_END", "LIMITS_START", "TIME_CONVENTION", "Block", "api_reference", "event_catalogue",
           "example_event", "generate"]



# --- docs/api.md ---------------------------------------------------------------------------------

def _ref_name(schema: Mapping[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return str(ref).rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _schema_link(name: str) -> str:
    return f"[`{name}`](#{slug(f'Schema {name}')})"


def _type(schema: Mapping[str, Any]) -> str:
    name = _ref_name(schema)
    if name:
        return _schema_link(name)
    kinds = schema.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if text == "array" and isinstance(schema.get("items"), Mapping):
        text = f"array of {_type(schema['items'])}"
    return f"{text} ({schema['format']})" if "format" in schema else text


def _constraints(schema: Mapping[str, Any]) -> str:
    parts = [f"one of {code(schema['enum'])}"] if "enum" in schema else []
    labels = {"minimum": "≥ {}", "maximum": "≤ {}", "minLength": "length ≥ {}", "maxLength": "length ≤ {}",
              "minItems": "at least {} items", "maxItems": "at most {} items"}
    parts += [label.format(schema[key]) for key, label in labels.items() if key in schema]
    return "; ".join(parts)


def _resolve(openapi: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    name = _ref_name(schema)
    return openapi["components"]["schemas"][name] if name else schema


def _fields(openapi: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """A schema's properties, one level deep, as a table."""
    resolved = _resolve(openapi, schema)
    properties: Mapping[str, Any] = resolved.get("properties", {})
    if not properties:
        return [f"A JSON {_type(resolved)}; its fields are not specified."]
    required = set(resolved.get("required", ()))
    rows = [(f"`{name}`", _type(prop), "yes" if name in required else "no", _constraints(prop),
             prop.get("description", "")) for name, prop in properties.items()]
    return table(["field", "type", "required", "constraints", "description"], rows)


def _auth(openapi: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    requirements = operation.get("security", openapi.get("security", []))
    schemes = openapi.get("components", {}).get("securitySchemes", {})
    names = [name for requirement in requirements for name in requirement]
    if not names:
        return "none"
    described = []
    for name in names:
        scheme = schemes.get(name, {})
        if scheme.get("type") == "http" and scheme.get("scheme") == "bearer":
            described.append(f"`{name}`: `Authorization: Bearer <key>`")
        else:
            described.append(f"`{name}`")
    return ", ".join(described)


def _parameters(operation: Mapping[str, Any]) -> list[str]:
    params = operation.get("parameters", [])
    if not params:
        return ["None."]
    rows = [(f"`{p['name']}`", p["in"], "yes" if p.get("required") else "no", _type(p.get("schema", {})),
             _constraints(p.get("schema", {})), p.get("description", "")) for p in params]
    return table(["name", "in", "required", "type", "constraints", "description"], rows)


def _request_body(openapi: Mapping[str, Any], operation: Mapping[str, Any]) -> list[str]:
    body = operation.get("requestBody")
    if body is None:
        return ["None."]
    required = "required" if body.get("required") else "optional"
    content: Mapping[str, Any] = body.get("content", {})
    if len(content) == 1:
        media_type, entry = next(iter(content.items()))
        schema = entry.get("schema", {})
        line = f"`{media_type}`, {required}: {_type(schema)}."
        return [line, "", *_fields(openapi, schema)] if _ref_name(schema) else [line]
    kinds = {_type(entry.get("schema", {})) for entry in content.values()}
    return [f"{required.capitalize()}; one of {code(content)}; the body is {' or '.join(sorted(kinds))}."]


def _responses(operation: Mapping[str, Any]) -> list[str]:
    rows = []
    for status, response in sorted(operation.get("responses", {}).items()):
        content = response.get("content", {})
        schemas = [_type(entry.get("schema", {})) for entry in content.values()]
        rows.append((f"`{status}`", response.get("description", ""), ", ".join(schemas) or "—"))
    return table(["status", "description", "schema"], rows)


def _operation(openapi: Mapping[str, Any], path: str, method: str, operation: Mapping[str, Any]) -> list[str]:
    lines = [f"## `{method.upper()} {path}`", "", operation.get("summary", ""), ""]
    if "description" in operation:
        lines += [operation["description"], ""]
    if "operationId" in operation:
        lines += [f"**Operation id:** `{operation['operationId']}`", ""]
    lines += [f"**Auth:** {_auth(openapi, operation)}", "", "**Parameters**", ""]
    lines += _parameters(operation)
    lines += ["", "**Request body**", "", *_request_body(openapi, operation)]
    lines += ["", "**Responses**", "", *_responses(operation), ""]
    return lines


def _operations(openapi: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    methods = ("get", "put", "post", "patch", "delete", "head", "options")
    return [(path, method, item[method]) for path, item in openapi.get("paths", {}).items()
            for method in methods if method in item]


TIME_CONVENTION = ("Every time in a job and in an event is RFC 3339 in UTC with `Z` and six fractional "
                   "digits: `2026-11-25T18:22:55.783569Z`.")


def _conventions() -> list[str]:
    """What holds for every route, written once above the operations."""
    return ["## Conventions", "",
            "- **Errors.** Every error, the router's own included, has the body above: an unknown route is `404` "
            "`not_found`, a wrong method `405` `method_not_allowed` (with `Allow`). A server-side error (`500` "
            "`internal_error`, `503` `storage_full`) never carries exception text or internal paths.",
            "- **Request ids.** Every answer carries `X-Request-Id`: the client's own when it is 1-128 characters "
            "of `A-Za-z0-9._-`, else a new one. Every log line written for the request carries it as "
            "`request_id`, and one `api.request` line records method, route template, status, duration and "
            "caller.",
            "- **Replays.** `POST /v1/jobs` with an `Idempotency-Key` that was already used with the same request "
            "answers the same job with `Idempotent-Replayed: true` (a request repeated without a key is found "
            "the same way).",
            "- **Uploads** are sniffed: bytes that are not the declared `Content-Type` are refused `415` "
            "`unsupported_media_type`, with `declared` and `detected`.",
            f"- **Times.** {TIME_CONVENTION} An upload's `expires_at` is the exception: Unix seconds, as in "
            "its signed URL.",
            "- **Outputs.** Each output of a job has `uri` (where it is stored) and `url`, the relay's route "
            "that serves it (`/v1/jobs/{job_id}/outputs/{index}`).",
            "- **Reference page.** `GET /docs` draws this document with Swagger UI, served by the relay itself."]


def api_reference(openapi: Mapping[str, Any]) -> str:
    """Markdown for every path and method of ``openapi`` (an OpenAPI 3.1 document), then its schemas."""
    info = openapi.get("info", {})
    operations = _operations(openapi)
    lines = [f"# {info.get('title', 'API')} HTTP API", "",
             GENERATED.format(source="`handlers/api/openapi.py`"), "",
             f"{info.get('description', '')} The OpenAPI {openapi.get('openapi', '')} document is served "
             "at `GET /openapi.json`.", "",
             "Every error answer has the body [`Error`](#schema-error): "
             '`{"error": {"code", "message", "errors"?}}`. `errors` lists every broken rule of a `400`.', "",
             *_conventions(), "",
             "## Operations", ""]
    lines += [f"- [`{m.upper()} {p}`](#{slug(f'{m.upper()} {p}')}): {op.get('summary', '')}"
              for p, m, op in operations]
    lines.append("")
    for path, method, operation in operations:
        lines += _operation(openapi, path, method, operation)
    lines += ["## Schemas", ""]
    for name, schema in openapi.get("components", {}).get("schemas", {}).items():
        lines += [f"### Schema `{name}`", "", *_fields(openapi, schema), ""]
    return "\n".join(lines).rstrip() + "\n"


# --- docs/events.md ------------------------------------------------------------------------------

_T0 = 1_795_630_973.87


def _example_job(outcome: Outcome) -> Job:
    model = "seedance-2.0-reference-to-video"
    request: dict[str, Any] = {"model": model, "duration": 5,
               "prompt": "Use image 1 as the first frame, audio 1 as the soundtrack",
               "image_urls": ["https://example.com/rider-style.jpg"],
               "audio_urls": ["https://example.com/synthwave-bgm.mp3"]}
    metadata = {"order": 17}
    fingerprint = request_fingerprint(request, metadata)
    job_id = derive_job_id("", f"order-17-{outcome}", fingerprint)
    task_id = None if outcome == "rejected" else "task-unified-1795630974-vhypo3lm"
    finished = _T0 + {"completed": 128.4, "failed": 61.2, "cancelled": 40.5, "expired": 172_800.0}.get(outcome, 0.6)
    return Job(id=job_id, request=request, fingerprint=fingerprint, created_at=_T0, updated_at=finished,
               status=JobStatus.STORED, metadata=metadata, idempotency_key=f"order-17-{outcome}",
               task_id=task_id, model=model, outcome=outcome, finished_at=finished,
               error=_EXAMPLE_ERRORS.get(outcome), outputs=_example_outputs(job_id) if outcome == "completed" else ())


def _example_outputs(job_id: str) -> tuple[Output, ...]:
    key = f"jobs/{job_id}/output-0.mp4"
    return (Output(uri=f"s3://seedance-relay-prod-videos-123456789012-eu-west-1/{key}", key=key, size=4_818_311,
                   sha256=hashlib.sha256(key.encode()).hexdigest(), content_type="video/mp4"),)


_EXAMPLE_ERRORS: dict[str, dict[str, Any]] = {
    "failed": {"code": "content_policy_violation", "type": "task_error",
               "message": "Content policy violation. Your request was blocked by safety filters."},
    "cancelled": {"code": "request_cancelled", "message": "Request was cancelled", "type": "task_error"},
    "expired": {"code": "expired", "message": "no final answer from the provider in time"},
    "rejected": {"code": "insufficient_quota", "status": 402, "provider_code": "insufficient_quota",
                 "message": "EvoLink 402 insufficient_quota: Insufficient quota, please top up"},
}


def example_event(outcome: str) -> dict[str, Any]:
    """A realistic event of ``outcome`` (or ``at_risk``), built by :mod:`handlers.domain.events`."""
    if outcome == AT_RISK:
        return _example_at_risk()
    if outcome in STORYBOARD_EVENT_TYPES:
        return example_storyboard_event(outcome)
    job = _example_job(Outcome(outcome))
    return build_event(job, now=(job.finished_at or _T0) + 0.01)


def _example_at_risk() -> dict[str, Any]:
    job = _example_job(Outcome.COMPLETED)
    seen = _T0 + 130.0
    failed = {"task_id": "task-unified-1795630974-q7d2kx0a", "code": "service_error", "type": "task_error",
              "message": "Internal service error, retry later.", "failed_at": rfc3339(_T0 + 60.0)}
    job = Job(id=job.id, request=job.request, fingerprint=job.fingerprint, created_at=_T0, updated_at=seen,
              status=JobStatus.PROCESSING, metadata=job.metadata, task_id=job.task_id, model=job.model,
              result_seen_at=seen, failed_tasks=(failed,))
    return build_at_risk_event(job, now=seen + 72_000.0, expires_at=seen + 86_400.0)


def _kind(prop: Mapping[str, Any]) -> str:
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    return _type(prop) if "type" in prop else "any"


def _schema_rows(properties: Mapping[str, Any]) -> list[tuple[str, ...]]:
    return [(f"`{name}`", _kind(prop), prop.get("description", "")) for name, prop in properties.items()]


def _per_type_rows() -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for event_type in OUTCOME_TYPES:
        data = event_schema(event_type)["properties"]["data"]
        props = data["properties"]
        outputs = props["outputs"]
        count = f"at least {outputs['minItems']}" if "minItems" in outputs else "always empty"
        error = "present" if "error" in data["required"] else "absent"
        rows.append((f"`{event_type.removeprefix(TYPE_PREFIX)}`", _kind(props["task_id"]), _kind(props["model"]),
                     _kind(props["duration"]), count, error))
    return rows


def _event_section(event_type: str) -> list[str]:
    schema = event_schema(event_type)
    outcome = event_type.removeprefix(TYPE_PREFIX)
    example = json.dumps(example_event(outcome), indent=2, ensure_ascii=False)
    return [f"## `{event_type}`", "", f"**When:** {schema['description']}", "",
            f"**Schema:** [`schemas/{event_type}.json`](schemas/{event_type}.json)", "",
            "```json", example, "```", ""]


def _data_section() -> list[str]:
    completed = event_schema(EVENT_TYPES[0])["properties"]["data"]["properties"]
    error = event_schema(TYPE_PREFIX + "failed")["properties"]["data"]["properties"]["error"]
    lines = ["## Data", "", *table(["field", "type", "description"], _schema_rows(completed))]
    lines += ["", "What differs per type (each type's schema pins it):", ""]
    lines += table(["outcome", "`task_id`", "`model`", "`duration`", "`outputs`", "`error`"], _per_type_rows())
    lines += ["", "A `rejected` event for a request that failed validation (requests queue) carries `model` "
              "(turned into a string) and `duration` as the request had them, unchecked.", "",
              "Each item of `outputs`:", ""]
    lines += table(["field", "type", "description"], _schema_rows(completed["outputs"]["items"]["properties"]))
    lines += ["", f"`error`: {error['description']}", ""]
    lines += table(["field", "type", "description"], _schema_rows(error["properties"]))
    return [*lines, "", "Other `error` fields may appear (EvoLink's error object passes through)."]


def event_catalogue() -> str:
    """Markdown: the envelope, the data fields, and each event type with when it is published and an example."""
    envelope = event_schema(EVENT_TYPES[0])["properties"]
    sources = "`handlers/domain/events.py` and `handlers/tooling/event_schemas.py`"
    lines = ["# Events", "", GENERATED.format(source=sources), "",
             "Every final job state publishes exactly one [CloudEvent 1.0](https://cloudevents.io) in structured "
             "JSON mode. How to receive them (SQS, webhooks, the local bus) is in [consumers.md](consumers.md). "
             "One more event is not final: `job.at_risk`, at most once per job, warns that a completed result is "
             "still not copied as its URL nears its expiry (its data is in its schema and example below).", "",
             "| type | when it is published | schema |", "|---|---|---|"]
    lines += [f"| [`{t}`](#{slug(t)}) | {cell(s['description'])} | [`schemas/{t}.json`](schemas/{t}.json) |"
              for t, s in all_event_schemas().items()]
    lines += ["", "## Envelope", ""]
    lines += table(["attribute", "value", "description"], _schema_rows(envelope))
    lines += ["", "No other attributes are sent. Dedupe on `id`: it depends only on the job and the outcome, "
              "so every delivery of a job's event carries the same `id`. The `type` value shown is the "
              "`completed` one.", "", f"{TIME_CONVENTION} That is `time`, `data.created_at` and "
              "`data.finished_at` here, and every time of a job in the HTTP API.", ""]
    lines += [*_data_section(), ""]
    for event_type in EVENT_TYPES:
        lines += _event_section(event_type)
    return "\n".join(lines).rstrip() + "\n"


# --- blocks between markers in hand-written pages -------------------------------------------------

@dataclass(frozen=True, slots=True)
class Block:
    """A generated block inside a hand-written page: between ``<!-- {name}:start -->`` and ``<!-- {name}:end -->``."""

    path: str
    name: str
    source: str
    render: Callable[[], str]

    @property
    def markers(self) -> tuple[str, str]:
        return f"<!-- {self.name}:start -->", f"<!-- {self.name}:end -->"

    def fill(self, page: str) -> str:
        """``page`` with the text between the markers replaced by the rendered block."""
        start_marker, end_marker = self.markers
        start, end = page.find(start_marker), page.find(end_marker)
        if start < 0 or end < start:
            raise ValueError(f"{self.path} needs {start_marker} and, after it, {end_marker}")
        generated = GENERATED.format(source=self.source)
        return f"{page[:start]}{start_marker}\n{generated}\n\n{self.render()}{page[end:]}"


BLOCKS: tuple[Block, ...] = (
    Block("docs/evolink.md", "limits", "`handlers/domain/contract.py`", limits_docs.evolink_limits),
    Block("README.md", "states", lifecycle_docs.SOURCE, lifecycle_docs.states_block),
    Block("README.md", "configuration", "`handlers/app/settings.py`", configuration_table),
)
"""Every generated block; one line adds another."""

LIMITS_START, LIMITS_END = next(block.markers for block in BLOCKS if block.name == "limits")


# --- writing -------------------------------------------------------------------------------------

def _wanted(root: Path) -> dict[Path, str]:
    docs = root / "docs"
    files = {docs / "api.md": api_reference(openapi_document()), docs / "events.md": event_catalogue(),
             docs / "lifecycle.md": lifecycle_docs.lifecycle_page()}
    for event_type, schema in all_event_schemas().items():
        files[docs / "schemas" / f"{event_type}.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    for block in BLOCKS:
        path = root / block.path
        if not path.is_file():
            raise ValueError(f"{block.path} is missing under {root}; its {block.name} block is generated")
        files[path] = block.fill(files.get(path) or path.read_text(encoding="utf-8"))
    return files


def generate(root: Path, check: bool) -> list[str]:
    """Write the generated docs under ``root``; return the paths (relative, sorted) that changed.

    With ``check`` nothing is written: the result lists the files that are stale, missing, or
    (in ``docs/schemas``) no longer generated.
    """
    wanted = _wanted(root)
    schemas = root / "docs" / "schemas"
    leftovers = [p for p in sorted(schemas.glob("*.json")) if p not in wanted] if schemas.is_dir() else []
    stale = [path for path, text in wanted.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if not check:
        for path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted[path], encoding="utf-8")
        for path in leftovers:
            path.unlink()
    return sorted(path.relative_to(root).as_posix() for path in [*stale, *leftovers])
