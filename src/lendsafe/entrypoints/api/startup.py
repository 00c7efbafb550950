"""Start-up of an API server process (the FastAPI lifespan), before its first request.

1. **Prime** the decision service: models loaded, the quote facts every limit search starts
   with priced, one synthetic decision per product (nothing written; see
   :meth:`lendsafe.services.decisions.DecisionService.prime`).
2. **Freeze the heap**: what is alive then (libraries, models, catalogue, policy, primed
   caches) moves into the garbage collector's permanent generation, so full collections walk
   only what later requests create (see :func:`freeze_startup_heap`).

SQLite's WAL checkpoints still run inside the committing request (every ~140 decisions,
2–15 ms of copy and fsync, measured): a background passive checkpoint was tried and dropped,
as under continuous writes the WAL then never restarts and its file grows without bound.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from lendsafe.bootstrap import Container

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Move everything alive now into the garbage collector's permanent generation.

    A full collection walks every tracked object; on the API server's heap (FastAPI,
    SQLAlchemy, pandas, LightGBM, the models) that took ~0.1 s, and it came round every few
    seconds under load, stalling every request in flight: at 200 requests/s the p99 was
    ~120 ms with the collector on and ~10 ms with it off (measured, bench/decision_bench.py).
    After the freeze, full collections walk only what was created later.
    """
    gc.collect()
    gc.freeze()


def lifespan(container: Container) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: prime the decisions, then freeze the heap (module docstring)."""

    @asynccontextmanager
    async def run(_app: FastAPI) -> AsyncIterator[None]:
        if container.decisions is not None:
            try:
                primed = container.decisions.prime()
                log.info("decisions primed: %d offers", primed)
            except Exception:  # a warm-up only: the other routes must still start
                log.exception("priming the decisions failed; the first requests will load")
        freeze_startup_heap()
        yield

    return run
