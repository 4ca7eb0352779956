"""Prometheus metrics at ``GET /metrics`` and one JSON log line per request, from each request's Outcome.

Label values are bounded: a model is named only once a provider answered for it (or it
has ``[models.*]`` prices), otherwise ``other``, so a client cannot grow the series by
sending made-up names. A client key appears by its name, never the key. Counts live in
plain cells updated on the event loop and rendered when scraped (``cells.py``); the log
lines leave once per loop turn (``requestlog.py``).
"""

from __future__ import annotations

import logging
import operator
import time
from typing import Any

import attrs
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from router_core import Manifest, Outcome, RequestContext, Route, hookimpl
from router_core.pipeline import RUNTIME
from router_lib.store import GAUGES, HEALTH
from router_lib.store.pricing import cost_usd

from .cells import Cells, Counter, Histogram
from .requestlog import RequestLog

NAME = "metrics"
request_log = logging.getLogger("llm_router.requests")

# Seconds: gateway latencies from sub-millisecond (refusals) to long generations.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@attrs.frozen
class MetricsSettings:
    """``[plugins.metrics]``."""

    request_log: bool = True  # one JSON line per request at INFO on the llm_router.requests logger


MANIFEST = Manifest(settings=MetricsSettings)


class Series:
    """The cells one kind of answer updates (same status, endpoint, model, provider and key), found once."""

    __slots__ = ("cost", "fallbacks", "first_byte", "input", "latency", "output", "planner", "requests", "upstream")

    def __init__(self, m: Metrics, status: int, endpoint: str, model: str, provider: str, key: str) -> None:
        self.requests = m.requests.cell(status, endpoint, model, provider, key)
        self.latency = m.latency.cell(endpoint, model)
        self.first_byte = m.first_byte.cell(endpoint, model)
        self.upstream = m.upstream.cell(provider)
        self.input = m.tokens.cell("input", model, key)
        self.output = m.tokens.cell("output", model, key)
        self.planner = m.tokens.cell("planner", model, key)
        self.cost = m.cost.cell(model, key)
        self.fallbacks = m.fallbacks.cell(provider)


class Metrics:
    """One app's series (a test's app never sees another's counts), updated on the event loop."""

    def __init__(self, app: web.Application, settings: MetricsSettings) -> None:
        self.settings = settings
        labels = ("status", "endpoint", "model", "provider", "key")
        self.requests = Counter("llm_router_requests", "Requests answered, by outcome.", labels)
        self.latency = Histogram(
            "llm_router_request_seconds", "Time from request to last byte.", ("endpoint", "model"), LATENCY_BUCKETS
        )
        self.first_byte = Histogram(
            "llm_router_first_byte_seconds", "Time from request to the answer's first byte.", ("endpoint", "model"),
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.upstream = Histogram(
            "llm_router_upstream_seconds", "Time from sending upstream to its answer (first byte when streamed).",
            ("provider",), LATENCY_BUCKETS,
        )  # fmt: skip
        self.tokens = Counter("llm_router_tokens", "Tokens by kind.", ("kind", "model", "key"))
        self.cost = Counter("llm_router_cost_usd", "Cost at [models.*] prices.", ("model", "key"))
        self.fallbacks = Counter("llm_router_fallbacks", "Routes given up on before one answered.", ("provider",))
        self.redactions = Counter("llm_router_redactions", "Values masked, by kind.", ("kind",))
        self.saved = Counter("llm_router_tokens_saved", "Tokens optimisations removed, by plugin.", ("by",))
        self.registry = CollectorRegistry(auto_describe=True)
        families = (self.requests, self.latency, self.first_byte, self.upstream, self.tokens, self.cost)
        self.registry.register(Cells(*families, self.fallbacks, self.redactions, self.saved))
        self.registry.register(StateCollector(app))
        self.known_models: set[str] = set()
        self.series: dict[tuple[Any, ...], Series] = {}
        self.log = RequestLog(request_log) if settings.request_log else None

    def model(self, outcome: Outcome, config: Any) -> str:
        model = outcome.model or ""
        if not model:
            return ""
        if model in self.known_models:
            return model
        if outcome.provider is not None or model in config.models:
            self.known_models.add(model)
            return model
        return "other"

    def record(self, outcome: Outcome, config: Any, upstream_seconds: float | None, cost: float) -> None:
        labels = (
            outcome.status,
            outcome.endpoint,
            self.model(outcome, config),
            outcome.provider or "",
            outcome.key_name or "",
        )
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = Series(self, *labels)
        s.requests[0] += 1
        self.latency.observe(s.latency, outcome.latency_ms / 1000)
        if outcome.first_byte_ms is not None:
            self.first_byte.observe(s.first_byte, outcome.first_byte_ms / 1000)
        if upstream_seconds is not None and outcome.provider:
            self.upstream.observe(s.upstream, upstream_seconds)
        if outcome.input_tokens:
            s.input[0] += outcome.input_tokens
        if outcome.output_tokens:
            s.output[0] += outcome.output_tokens
        if outcome.planner_tokens:
            s.planner[0] += outcome.planner_tokens
        if cost:
            s.cost[0] += cost
        if outcome.fallbacks:
            s.fallbacks[0] += outcome.fallbacks
        for kind, n in outcome.redactions.items():
            self.redactions.cell(kind)[0] += n
        for by, n in outcome.tokens_saved.items():
            self.saved.cell(by)[0] += n


class StateCollector:
    """Read at scrape time: circuit breakers, the shared store's health, plugin failures."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def describe(self) -> list:
        return []

    def collect(self):
        rt = self.app.get(RUNTIME)
        if rt is None:
            return
        breaker = GaugeMetricFamily(
            "llm_router_breaker_open", "1 while a provider is cooling down.", labels=["provider"]
        )
        for name, provider in rt.routes.providers.items():
            is_open = getattr(provider.breaker, "is_open", None)
            if is_open is not None:
                breaker.add_metric([name], float(is_open(provider)))
        yield breaker
        failures = CounterMetricFamily("llm_router_plugin_failures", "Plugin exceptions, by plugin.", labels=["plugin"])
        for plugin, n in rt.host.failures.items():
            failures.add_metric([plugin], n)
        yield failures
        health = self.app.get(HEALTH)
        if health is not None:
            yield GaugeMetricFamily("llm_router_store_up", "1 while the shared store answers.", value=float(health.up))
            yield CounterMetricFamily("llm_router_store_errors", "Store operations that failed.", value=health.errors)
            refused = CounterMetricFamily(
                "llm_router_store_unchecked", "Requests while the store was down, by what happened.", labels=["action"]
            )
            refused.add_metric(["refused"], health.refused)
            refused.add_metric(["admitted"], health.admitted_unchecked)
            yield refused
        for name, read in self.app.get(GAUGES, {}).items():  # what other plugins publish
            family = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            yield family(f"llm_router_{name.removesuffix('_total')}", f"Published by a plugin: {name}.", value=read())


METRICS = web.AppKey("metrics.metrics", Metrics)


@hookimpl
def router_startup(app: web.Application, settings: MetricsSettings) -> None:
    app[METRICS] = Metrics(app, settings)


@hookimpl
def router_shutdown(app: web.Application) -> None:
    metrics = app.get(METRICS)
    if metrics is not None and metrics.log is not None:
        metrics.log.flush()


@hookimpl
def register_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", scrape, name="metrics")


async def scrape(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@hookimpl
def upstream_request(ctx: RequestContext, route: Route) -> None:
    ctx.plugin_state[NAME] = time.perf_counter()  # the last attempt's start


@hookimpl
def post_response(ctx: RequestContext) -> None:
    sent = ctx.plugin_state.get(NAME)
    if isinstance(sent, float):
        ctx.plugin_state[NAME] = (sent, time.perf_counter())


def upstream_seconds(ctx: RequestContext | None) -> float | None:
    """From the last attempt's start to its answer (post_response) or, streamed, its first byte."""
    mark = ctx.plugin_state.get(NAME) if ctx is not None else None
    if isinstance(mark, tuple):
        return mark[1] - mark[0]
    if isinstance(mark, float) and ctx.first_byte_at is not None:
        return ctx.first_byte_at - mark
    return None


# The request log line: the Outcome's fields, read in one call, between its time and its cost.
OUTCOME_FIELDS = tuple(a.name for a in attrs.fields(Outcome))
LOG_FIELDS = ("ts", *OUTCOME_FIELDS, "cost_usd")
outcome_values = operator.attrgetter(*OUTCOME_FIELDS)


@hookimpl
def request_finished(ctx: RequestContext | None, outcome: Outcome, app: web.Application) -> None:
    metrics = app.get(METRICS)
    if metrics is None:
        return
    config = app[RUNTIME].config
    cost = cost_usd(config, outcome.model, outcome.input_tokens, outcome.output_tokens)
    metrics.record(outcome, config, upstream_seconds(ctx), cost)
    if metrics.log is not None and request_log.isEnabledFor(logging.INFO):
        now = time.time()
        line = dict(zip(LOG_FIELDS, (round(now, 3), *outcome_values(outcome), cost), strict=True))
        metrics.log.add(now, orjson.dumps(line))
