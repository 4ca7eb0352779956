"""The ``zdr`` gateway field: only zero-data-retention providers, sent their no-retention switches."""

from __future__ import annotations

from typing import Any

from router_core import PolicyViolation, RequestContext, Route, hookimpl

# A failure here must refuse the request: failing open would send data to any provider.
FAIL_CLOSED = True

# The body fields that switch retention off, per provider kind. Another kind adds its row;
# one provider can add more with ``options.zdr_switches`` in plugins.toml.
NO_RETENTION_SWITCHES: dict[str, dict[str, Any]] = {
    "openai": {"store": False},  # Responses and Chat Completions both store unless told not to
}


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {"zdr": bool}


def _on(ctx: RequestContext) -> bool:
    return ctx.gateway.get("zdr") is True


@hookimpl
def select_provider(ctx: RequestContext, routes: list[Route]) -> list[Route] | None:
    if not _on(ctx):
        return None
    kept = [route for route in routes if route.provider.config.zdr]
    if not kept:
        raise PolicyViolation(
            f"No zero-data-retention provider serves '{ctx.call.model}': gateway.zdr is on and "
            f"{', '.join(r.name for r in routes)} {'is' if len(routes) == 1 else 'are'} not marked zdr = true.",
            param="gateway.zdr",
        )
    return kept


@hookimpl
def upstream_request(ctx: RequestContext, route: Route, body: dict[str, Any]) -> None:
    if not _on(ctx):
        return
    if not route.provider.config.zdr:  # a later plugin re-added a route: refuse rather than leak
        raise PolicyViolation(
            f"Provider '{route.name}' is not zero-data-retention and gateway.zdr is on.", param="gateway.zdr"
        )
    body.update(NO_RETENTION_SWITCHES.get(route.provider.kind, {}))
    body.update(route.provider.config.options.get("zdr_switches") or {})
