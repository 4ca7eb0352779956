"""The ``order`` gateway field: providers to try first, in that order; the others keep their rank after."""

from __future__ import annotations

from typing import Any

from router_core import RequestContext, Route, hookimpl
from router_plugins.routing import provider_list


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {"order": list[str]}


@hookimpl
def select_provider(ctx: RequestContext, routes: list[Route]) -> list[Route] | None:
    preferred = provider_list(ctx, "order")
    if not preferred:
        return None
    # A name no route has is ignored: order ranks, it never adds or refuses a provider.
    rank = {name: i for i, name in reversed(list(enumerate(preferred)))}
    unranked = len(preferred)
    # sorted() is stable, so unlisted routes keep the config's default order.
    return sorted(routes, key=lambda route: rank.get(route.name, unranked))
