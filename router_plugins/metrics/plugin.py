"""Prometheus metrics at ``GET /metrics`` and one JSON log line per request, from each request's Outcome.

Label values are bounded: a model is named only once a provider answered for it (or it
has ``[models.*]`` prices), otherwise ``other``, so a client cannot grow the series by
sending made-up names. A client key appears by its name, never the key.
"""

from __future__ import annotations

import logging
import operator
import time
from typing import Any

import attrs
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from router_core import Manifest, Outcome, RequestContext, Route, hookimpl
from router_core.pipeline import RUNTIME
from router_lib.store import GAUGES, HEALTH
from router_lib.store.pricing import cost_usd

NAME = "metrics"
request_log = logging.getLogger("llm_router.requests")

# Seconds: gateway latencies from sub-millisecond (refusals) to long generations.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@attrs.frozen
class MetricsSettings:
    """``[plugins.metrics]``."""

    request_log: bool = True  # one JSON line per request at INFO on the llm_router.requests logger


MANIFEST = Manifest(settings=MetricsSettings)


class Metrics:
    """One app's series, in a registry of its own (a test's app never sees another's counts)."""

    def __init__(self, app: web.Application, settings: MetricsSettings) -> None:
        self.settings = settings
        self.registry = r = CollectorRegistry(auto_describe=True)
        labels = ("status", "endpoint", "model", "provider", "key")
        self.requests = Counter("llm_router_requests", "Requests answered, by outcome.", labels, registry=r)
        self.latency = Histogram(
            "llm_router_request_seconds", "Time from request to last byte.", ("endpoint", "model"),
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_byte = Histogram(
            "llm_router_first_byte_seconds", "Time from request to the answer's first byte.", ("endpoint", "model"),
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream = Histogram(
            "llm_router_upstream_seconds", "Time from sending upstream to its answer (first byte when streamed).",
            ("provider",), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter("llm_router_tokens", "Tokens by kind.", ("kind", "model", "key"), registry=r)
        self.cost = Counter("llm_router_cost_usd", "Cost at [models.*] prices.", ("model", "key"), registry=r)
        self.fallbacks = Counter(
            "llm_router_fallbacks", "Routes given up on before one answered.", ("provider",), registry=r
        )
        self.redactions = Counter("llm_router_redactions", "Values masked, by kind.", ("kind",), registry=r)
        self.saved = Counter("llm_router_tokens_saved", "Tokens optimisations removed, by plugin.", ("by",), registry=r)
        r.register(StateCollector(app))
        self.known_models: set[str] = set()
        # Label children by their label values, bound once: prometheus_client's labels() checks
        # and converts its arguments under a lock on every call, a dict lookup does not.
        self.children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: Any) -> Any:
        found = self.children.get((metric, *labels))
        if found is None:
            found = self.children[(metric, *labels)] = metric.labels(*[str(v) for v in labels])
        return found

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
        model, key = self.model(outcome, config), outcome.key_name or ""
        provider, endpoint, child = outcome.provider or "", outcome.endpoint, self.child
        child(self.requests, outcome.status, endpoint, model, provider, key).inc()
        child(self.latency, endpoint, model).observe(outcome.latency_ms / 1000)
        if outcome.first_byte_ms is not None:
            child(self.first_byte, endpoint, model).observe(outcome.first_byte_ms / 1000)
        if upstream_seconds is not None and provider:
            child(self.upstream, provider).observe(upstream_seconds)
        if outcome.input_tokens:
            child(self.tokens, "input", model, key).inc(outcome.input_tokens)
        if outcome.output_tokens:
            child(self.tokens, "output", model, key).inc(outcome.output_tokens)
        if outcome.planner_tokens:
            child(self.tokens, "planner", model, key).inc(outcome.planner_tokens)
        if cost:
            child(self.cost, model, key).inc(cost)
        if outcome.fallbacks:
            child(self.fallbacks, provider).inc(outcome.fallbacks)
        for kind, n in outcome.redactions.items():
            child(self.redactions, kind).inc(n)
        for by, n in outcome.tokens_saved.items():
            child(self.saved, by).inc(n)


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
    if metrics.settings.request_log and request_log.isEnabledFor(logging.INFO):
        line = dict(zip(LOG_FIELDS, (round(time.time(), 3), *outcome_values(outcome), cost), strict=True))
        # handle() of a record made here: the logger's handlers and filters as for .info(), without
        # its search of the call stack for the caller's file and line (a fixed one is given).
        record = request_log.makeRecord(
            request_log.name, logging.INFO, __file__, 0, orjson.dumps(line).decode(), None, None, "request_finished"
        )
        request_log.handle(record)
