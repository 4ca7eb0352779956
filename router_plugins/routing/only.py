"""The ``only`` gateway field: a strict allow-list of providers; nothing outside it is ever called."""

from __future__ import annotations

from typing import Any

from router_core import PolicyViolation, RequestContext, Route, hookimpl
from router_plugins.routing import provider_list


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {"only": list[str]}


@hookimpl
def select_provider(ctx: RequestContext, routes: list[Route]) -> list[Route] | None:
    allowed = provider_list(ctx, "only")
    if allowed is None:
        return None
    kept = [route for route in routes if route.name in allowed]
    if not kept:
        raise PolicyViolation(
            f"No allowed provider serves '{ctx.call.model}': gateway.only allows "
            f"{', '.join(allowed)}; the model is served by {', '.join(r.name for r in routes) or 'none'}.",
            param="gateway.only",
        )
    return kept
