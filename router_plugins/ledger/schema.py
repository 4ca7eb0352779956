"""The ledger's rows, its tables and their migrations: one schema for SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

import attrs
import orjson

from router_lib.store.pricing import cost_usd


class Row(NamedTuple):
    """One request, as the ledger keeps it: figures and names, never prompt or answer text.

    A tuple (cheap to make on the request path, written as it stands but for its two dicts).
    """

    ts: float
    request_id: str
    key_name: str | None
    endpoint: str
    stream: bool
    status: int
    error_code: str | None
    model_requested: str | None
    model: str | None
    provider: str | None
    tag: str | None
    fallbacks: int
    latency_ms: float
    first_byte_ms: float | None
    input_tokens: int
    output_tokens: int
    planner_tokens: int
    cost_usd: float
    tokens_saved: dict[str, int]
    redactions: dict[str, int]

    @property
    def day(self) -> str:
        return utc_day(int(self.ts // 86400))


@functools.lru_cache(maxsize=8)
def utc_day(days: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch (worked out once per day, not per row)."""
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))


COLUMNS = list(Row._fields)
# Grouping columns of the daily aggregate; '' stands for "none" so that upserts match.
GROUPS = ("day", "key_name", "model", "provider", "tag")
BY = {"key": "key_name", "model": "model", "provider": "provider", "tag": "tag", "day": "day"}


def row_of(outcome: Any, config: Any) -> Row:
    first_byte_ms = outcome.first_byte_ms
    return Row(
        time.time(),
        outcome.request_id,
        outcome.key_name,
        outcome.endpoint,
        bool(outcome.stream),
        outcome.status,
        outcome.error_code,
        outcome.model_requested,
        outcome.model,
        outcome.provider,
        outcome.tag,
        outcome.fallbacks,
        round(outcome.latency_ms, 3),
        None if first_byte_ms is None else round(first_byte_ms, 3),
        outcome.input_tokens,
        outcome.output_tokens,
        outcome.planner_tokens,
        cost_usd(config, outcome.model, outcome.input_tokens, outcome.output_tokens),
        outcome.tokens_saved,  # the Outcome's own copies: it is not changed after request_finished
        outcome.redactions,
    )


def values(row: Row) -> tuple[Any, ...]:
    """A row as the ``requests`` table's columns (its dicts as JSON text, the UTC day added)."""
    return (*row[:-2], _json(row.tokens_saved), _json(row.redactions), row.day)


def _json(counts: dict[str, int]) -> str:
    return orjson.dumps(counts).decode() if counts else "{}"


@attrs.define
class Totals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    planner_tokens: int = 0
    cost_usd: float = 0.0
    tokens_saved: int = 0
    latency_ms: float = 0.0


class Batch:
    """Rows made ready for the database as they arrive: their columns, and the daily totals they add to.

    Done row by row on the event loop (a few microseconds each, after the answer went out),
    so that writing a batch is the database's own work: no Python loop over hundreds of
    rows in the SQLite thread, holding the GIL while the event loop waits for it.
    """

    __slots__ = ("params", "totals")

    def __init__(self) -> None:
        self.params: list[tuple[Any, ...]] = []
        self.totals: dict[tuple[str, ...], Totals] = {}

    @classmethod
    def of(cls, rows: list[Row]) -> Batch:
        batch = cls()
        for row in rows:
            batch.add(row)
        return batch

    def __len__(self) -> int:
        return len(self.params)

    def add(self, row: Row) -> None:
        self.params.append(values(row))
        # Summed per (day, key, model, provider, tag): one upsert per group, not per request.
        group = (row.day, row.key_name or "", row.model or "", row.provider or "", row.tag or "")
        t = self.totals.get(group)
        if t is None:
            t = self.totals[group] = Totals()
        t.requests += 1
        t.errors += row.status >= 400
        t.input_tokens += row.input_tokens
        t.output_tokens += row.output_tokens
        t.planner_tokens += row.planner_tokens
        t.cost_usd += row.cost_usd
        t.tokens_saved += sum(row.tokens_saved.values())
        t.latency_ms += row.latency_ms

    def total_params(self) -> list[tuple[Any, ...]]:
        """The upserts' parameters, groups in one order (two gateways upserting the same totals never deadlock)."""
        return [(*group, *(getattr(t, n) for n in TOTALS)) for group, t in sorted(self.totals.items())]


TOTALS = [a.name for a in attrs.fields(Totals)]

# Each migration is (version, DDL); {id}, {float}, {bigint} and {bool} are filled per database.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE requests (
                id {id},
                ts {float} NOT NULL,
                request_id TEXT NOT NULL,
                key_name TEXT,
                endpoint TEXT NOT NULL,
                stream {bool} NOT NULL,
                status INTEGER NOT NULL,
                error_code TEXT,
                model_requested TEXT,
                model TEXT,
                provider TEXT,
                tag TEXT,
                fallbacks INTEGER NOT NULL,
                latency_ms {float} NOT NULL,
                first_byte_ms {float},
                input_tokens {bigint} NOT NULL,
                output_tokens {bigint} NOT NULL,
                planner_tokens {bigint} NOT NULL,
                cost_usd {float} NOT NULL,
                tokens_saved TEXT NOT NULL,
                redactions TEXT NOT NULL,
                day TEXT NOT NULL
            )""",
            "CREATE INDEX requests_request_id ON requests (request_id)",
            "CREATE INDEX requests_day ON requests (day)",
            """CREATE TABLE usage_daily (
                day TEXT NOT NULL,
                key_name TEXT NOT NULL,
                model TEXT NOT NULL,
                provider TEXT NOT NULL,
                tag TEXT NOT NULL,
                requests {bigint} NOT NULL,
                errors {bigint} NOT NULL,
                input_tokens {bigint} NOT NULL,
                output_tokens {bigint} NOT NULL,
                planner_tokens {bigint} NOT NULL,
                cost_usd {float} NOT NULL,
                tokens_saved {bigint} NOT NULL,
                latency_ms {float} NOT NULL,
                PRIMARY KEY (day, key_name, model, provider, tag)
            )""",
        ],
    ),
]

INSERT_ROW = "INSERT INTO requests ({}) VALUES ({{}})".format(", ".join([*COLUMNS, "day"]))
UPSERT_TOTALS = (
    "INSERT INTO usage_daily ({cols}) VALUES ({{}}) ON CONFLICT (day, key_name, model, provider, tag) DO UPDATE SET "
    + ", ".join(f"{t} = usage_daily.{t} + excluded.{t}" for t in TOTALS)
).format(cols=", ".join([*GROUPS, *TOTALS]))


def usage_query(by: str, placeholder: str) -> str:
    """Totals per ``by`` (key, model, provider, tag, day) from the daily aggregate, since a day."""
    column = BY[by]
    sums = ", ".join(f"SUM({t}) AS {t}" for t in TOTALS)
    order = f"{column}" if by == "day" else "cost_usd DESC, requests DESC"
    return f"SELECT {column} AS name, {sums} FROM usage_daily WHERE day >= {placeholder} GROUP BY {column} ORDER BY {order}"


def as_generation(record: dict[str, Any]) -> dict[str, Any]:
    """A ``requests`` row as ``GET /v1/generations/{id}`` shows it."""
    out = {k: record[k] for k in COLUMNS if k in record}
    out["stream"] = bool(out.get("stream"))
    for name in ("tokens_saved", "redactions"):
        if isinstance(out.get(name), str):
            out[name] = orjson.loads(out[name])
    out["id"] = out.pop("request_id")
    out["created_at"] = out.pop("ts")
    return out
