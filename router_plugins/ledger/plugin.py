"""The usage and cost ledger (``[usage]``): one row per request, written off the request path.

``request_finished`` turns the request's Outcome into a row (figures and names, never
text) and queues it; a writer task stores batches in SQLite or PostgreSQL, with daily
totals per key, model, provider and tag kept beside them for ``llm-router usage``.
``GET /v1/generations/{id}`` returns one row to the key that made the request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import orjson
from aiohttp import web

from router_core import Outcome, hookimpl
from router_core.config import ConfigError, converter, validation_errors
from router_core.errors import NotFound
from router_core.pipeline import RUNTIME
from router_lib.store import KEY_NAME, publish

from .backends import LedgerUnavailable, open_ledger
from .schema import as_generation, row_of
from .writer import LedgerWriter

CONFIG_TABLES = ("usage",)


def data_dir() -> Path:
    """``$LLM_ROUTER_DATA_DIR``, else ``$XDG_DATA_HOME/llm-router`` (``~/.local/share/llm-router``)."""
    if os.environ.get("LLM_ROUTER_DATA_DIR"):
        return Path(os.environ["LLM_ROUTER_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llm-router"


def _url(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError(f"'{attribute.name}' must be sqlite:///path or postgresql://…")


@attrs.frozen
class UsageSettings:
    """``[usage]``: where the ledger lives and how rows are batched."""

    url: str = attrs.field(default="", validator=_url, repr=False)  # "": SQLite in the data directory
    queue_size: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    batch_size: int = attrs.field(default=500, validator=attrs.validators.ge(1))
    flush_seconds: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))

    @property
    def database(self) -> str:
        return self.url or f"sqlite:///{data_dir() / 'usage.db'}"


def usage_settings(config: Any) -> UsageSettings:
    try:
        return converter.structure(dict(config.usage), UsageSettings)
    except Exception as exc:
        raise ConfigError([f"usage{path[1:]}: {message}" for path, message in validation_errors(exc)]) from None


WRITER = web.AppKey("ledger.writer", LedgerWriter)


@hookimpl
def register_middlewares(config: Any) -> None:
    usage_settings(config)  # a bad [usage] table fails `llm-router check` too


@hookimpl
async def router_startup(app: web.Application, config: Any) -> None:
    settings = usage_settings(config)
    ledger = open_ledger(settings.database)
    try:
        await ledger.start()
    except LedgerUnavailable as exc:
        raise ConfigError([f"usage.url: {exc}"]) from None
    writer = LedgerWriter(ledger, settings.queue_size, settings.batch_size, settings.flush_seconds)
    writer.start()
    app[WRITER] = writer
    publish(app, "ledger_rows_written_total", lambda: writer.written)
    publish(app, "ledger_rows_dropped_total", lambda: writer.dropped)  # the queue was full
    publish(app, "ledger_rows_failed_total", lambda: writer.failed)  # the database refused a batch
    publish(app, "ledger_queue_rows", writer.queued)


@hookimpl
async def router_shutdown(app: web.Application) -> None:
    writer = app.get(WRITER)
    if writer is not None:
        await writer.stop()
        await writer.ledger.close()


@hookimpl
def request_finished(outcome: Outcome, app: web.Application) -> None:
    writer = app.get(WRITER)
    if writer is not None:
        writer.add(row_of(outcome, app[RUNTIME].config))


@hookimpl
def register_routes(app: web.Application) -> None:
    app.router.add_get("/v1/generations/{id}", generation, name="generation")


async def generation(request: web.Request) -> web.Response:
    """One request's ledger row, for the key that made it (another key's is "not found")."""
    writer = request.app[WRITER]
    found = await writer.ledger.generation(request.match_info["id"], request.get(KEY_NAME))
    if found is None:
        raise NotFound("No generation with that id for this key (rows reach the ledger within a second of the answer).")
    return web.Response(body=orjson.dumps({"data": as_generation(found)}), content_type="application/json")
