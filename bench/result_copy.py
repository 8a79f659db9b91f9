"""Result copy: a large result streamed over HTTP into S3 (moto), three ways, side by side.

* **relay**: the relay's real path, as ``handlers.usecases.copy.copy_results`` runs it:
  ``ResultFetcher.open(url)`` (SSRF-guarded ``http.client``) into ``S3BlobStore.put_stream``,
  which reads the body straight into its part buffers (8 MiB multipart parts, 4 in flight,
  sha256 on the way, conditional complete, then the small sidecar that records the sha256).
* **upload_file**: boto3's ``upload_file`` of the same bytes from a local file (its managed
  transfer: 8 MiB parts, 10 threads); no download at all, so the practical limit.
* **naive**: ``httpx.get(url).content`` (the whole result in memory), then ``put_object``.

The result is served over real HTTP on loopback by ``handlers.net.files.MediaFileResponse`` (what the
sandbox's download route answers with) in its own process; moto runs in server mode in
another. Each copy runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own; the
growth between the smallest and the largest size shows whether memory is constant.

    python bench/result_copy.py [--quick] [--sizes 100M,1G] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    aws_env,
    emit,
    free_port,
    human_bytes,
    median,
    parse_size,
    ratio,
    run_python,
    running_moto,
    spawned,
    wait_until_answers,
)

__all__ = ["VARIANTS", "main"]

VARIANTS = ("relay", "upload_file", "naive")
TARGET_RATIO, TARGET_GROWTH_MIB = 0.8, 32.0
BUCKET = "bench-results"
MIB = 1024 * 1024


# --- roles -------------------------------------------------------------------------------------
def serve_files(port: int, directory: Path) -> None:
    """``GET /files/{name}`` as the sandbox serves results: a ``MediaFileResponse`` (1 MiB reads), video/mp4."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from handlers.net.files import MediaFileResponse

    async def download(request: Request) -> Response:
        return MediaFileResponse(directory / Path(request.path_params["name"]).name, media_type="video/mp4")

    async def healthz(_: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/files/{name}", download), Route("/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _s3(endpoint: str) -> Any:
    from handlers.adapters.aws.clients import aws_clients
    from handlers.adapters.aws.names import AwsNames

    return aws_clients(AwsNames(bucket=BUCKET), endpoint_url=endpoint).s3


def copy(variant: str, url: str, path: Path, endpoint: str, key: str) -> dict[str, Any]:
    """One copy in this (fresh) process; returns its timing, size and peak RSS."""
    s3 = _s3(endpoint)
    operations = _time_operations(s3)
    rss_before = _peak_rss()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    if variant == "relay":
        size = _copy_relay(s3, url, key)
    elif variant == "upload_file":
        s3.upload_file(str(path), BUCKET, key, ExtraArgs={"ContentType": "video/mp4"})
        size = path.stat().st_size
    else:
        size = _copy_naive(s3, url, key)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    stored = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    if stored != size:
        raise RuntimeError(f"{variant}: stored {stored} bytes, expected {size}")
    s3.delete_object(Bucket=BUCKET, Key=key)
    return {"variant": variant, "bytes": size, "seconds": round(elapsed, 3),
            "mib_per_s": round(size / MIB / elapsed, 1), "peak_rss_mib": round(_peak_rss() / MIB, 1),
            "rss_before_copy_mib": round(rss_before / MIB, 1), "cpu_seconds": round(cpu, 2),
            "s3_seconds": {name: round(total, 3) for name, total in sorted(operations.items())}}


def _time_operations(s3: Any) -> dict[str, float]:
    """Seconds spent in each S3 operation (summed over threads), through botocore's events."""
    totals: dict[str, float] = {}
    started: dict[int, float] = {}

    def before(model: Any, **_: Any) -> None:
        started[threading.get_ident()] = time.perf_counter()

    def after(model: Any, **_: Any) -> None:
        elapsed = time.perf_counter() - started.pop(threading.get_ident(), time.perf_counter())
        totals[model.name] = totals.get(model.name, 0.0) + elapsed

    s3.meta.events.register("before-call.s3", before)
    s3.meta.events.register("after-call.s3", after)
    return totals


def _copy_relay(s3: Any, url: str, key: str) -> int:
    from urllib.parse import urlsplit

    from handlers.adapters.aws.blobs import S3BlobStore
    from handlers.net.download import ResultFetcher
    from handlers.net.netguard import AddressPolicy

    fetcher = ResultFetcher(AddressPolicy(allowed_hosts=frozenset({urlsplit(url).netloc})))
    try:
        with fetcher.open(url) as download:
            stored = S3BlobStore(s3, BUCKET).put_stream(
                key, download.chunks, content_type=download.content_type, only_new=True,
                metadata={"job_id": "job_bench", "task_id": "task-bench", "source": "evolink"})
    finally:
        fetcher.close()
    return stored.size


def _copy_naive(s3: Any, url: str, key: str) -> int:
    import httpx

    body = httpx.get(url, timeout=600).content
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="video/mp4",
                  Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    return len(body)


def _cpu_seconds() -> float:
    """User plus system CPU time this process (all its threads) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- driver ------------------------------------------------------------------------------------
def make_file(path: Path, size: int) -> None:
    """``size`` bytes of incompressible data (a random MiB repeated)."""
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        whole, rest = divmod(size, MIB)
        for _ in range(whole):
            handle.write(block)
        handle.write(block[:rest])


def measure(sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        files, port = Path(tmp) / "files", free_port()
        files.mkdir()
        with running_moto(log=Path(tmp) / "moto.log") as endpoint, \
                spawned([__file__, "--role", "files", "--port", str(port), "--dir", str(files)]) as server:
            wait_until_answers(f"http://127.0.0.1:{port}/healthz", server)
            _create_bucket(endpoint)
            for size in sizes:
                name = f"result-{size}.mp4"
                make_file(files / name, size)
                for round_ in range(rounds):
                    order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
                    for variant in order:
                        done = run_python([__file__, "--role", "copy", "--variant", variant, "--url",
                                           f"http://127.0.0.1:{port}/files/{name}", "--path", str(files / name),
                                           "--endpoint", endpoint, "--key", f"bench/{variant}-{size}.mp4"],
                                          env=aws_env(), timeout=1800)
                        runs.append({**json.loads(done.stdout.strip().splitlines()[-1]), "round": round_})
                (files / name).unlink()
    return runs


def _create_bucket(endpoint: str) -> None:
    """The bucket, created with moto's fake credentials given explicitly (this process's environment stays as it is)."""
    import boto3

    env = aws_env()
    boto3.client("s3", endpoint_url=endpoint, region_name=env["AWS_REGION"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)


def summarise(runs: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for size in sizes:
        label = human_bytes(size).replace(" ", "")
        picked = {v: [r for r in runs if r["variant"] == v and r["bytes"] == size] for v in VARIANTS}
        rate = {v: median([r["mib_per_s"] for r in rs]) for v, rs in picked.items()}
        paired = {v: _round_ratios(picked[v], picked["upload_file"]) for v in VARIANTS}
        table[label] = {v: {"mib_per_s": rate[v], "seconds": median([r["seconds"] for r in picked[v]]),
                            "peak_rss_mib": max(r["peak_rss_mib"] for r in picked[v]),
                            "ratio_to_upload_file": median(paired[v]), "round_ratios": paired[v],
                            "s3_seconds_first_round": picked[v][0]["s3_seconds"]} for v in VARIANTS}
    first, last = next(iter(table)), list(table)[-1]
    growth = {v: round(table[last][v]["peak_rss_mib"] - table[first][v]["peak_rss_mib"], 1) for v in VARIANTS}
    relay_ratio = table[last]["relay"]["ratio_to_upload_file"]
    return {"sizes": list(table), "results": table, "rss_growth_mib": growth,
            "rss_growth_between": [first, last], "relay_ratio_to_upload_file": relay_ratio,
            "meets_target": relay_ratio >= TARGET_RATIO and growth["relay"] < TARGET_GROWTH_MIB,
            "target": {"relay_ratio_to_upload_file": f">= {TARGET_RATIO}",
                       "relay_rss_growth_mib": f"< {TARGET_GROWTH_MIB}"}}


def _round_ratios(runs: list[dict[str, Any]], limits: list[dict[str, Any]]) -> list[float]:
    """Each round's throughput as a ratio to ``upload_file``'s in the same round.

    The variants of a round run back to back, so a host that slows down for a while slows
    the pair together; the median of these paired ratios is the figure the target is held to.
    """
    limit = {r["round"]: r["seconds"] for r in limits}
    return [ratio(limit[r["round"]], r["seconds"]) for r in sorted(runs, key=lambda r: r["round"])]


def report(figures: dict[str, Any]) -> None:
    rows = [[size, variant, r["mib_per_s"], r["seconds"], r["ratio_to_upload_file"], r["peak_rss_mib"]]
            for size, by_variant in figures["results"].items() for variant, r in by_variant.items()]
    first, last = figures["rss_growth_between"]
    rows += [[f"RSS growth {first} → {last}", v, "", "", "", g] for v, g in figures["rss_growth_mib"].items()]
    emit("result_copy", ["size", "variant", "MiB/s", "s", "x upload_file", "peak RSS MiB"], rows, figures)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 8M,64M")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes, smallest first (default 100M,1G)")
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (1 with --quick)")
    parser.add_argument("--role", choices=("driver", "files", "copy"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "files":
        serve_files(args.port, args.dir)
        return {}
    if args.role == "copy":
        print(json.dumps(copy(args.variant, args.url, args.path, args.endpoint, args.key)))
        return {}
    sizes = sorted(parse_size(s) for s in (args.sizes or ("8M,64M" if args.quick else "100M,1G")).split(","))
    figures = summarise(measure(sizes, args.rounds or (1 if args.quick else 5)), sizes)
    report(figures)
    return figures


if __name__ == "__main__":
    main()
