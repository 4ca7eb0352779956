"""Provider routing plugins: ``only`` filters, ``zdr`` filters to no-retention providers, ``order`` ranks."""

from __future__ import annotations

from router_core import BadRequest, RequestContext


def provider_list(ctx: RequestContext, field: str) -> list[str] | None:
    """The request's ``gateway.<field>`` provider names, or ``None`` when not asked for.

    The core's converter has already made it a list of strings; an empty name would
    silently match nothing, so it is refused here.
    """
    names: list[str] | None = ctx.gateway.get(field)
    if names is None:
        return None
    for i, name in enumerate(names):
        if not name.strip():
            param = f"gateway.{field}[{i}]"
            raise BadRequest(
                f"Invalid value for '{param}': expected a non-empty provider name.",
                param=param,
                code="invalid_gateway_field",
            )
    return names
