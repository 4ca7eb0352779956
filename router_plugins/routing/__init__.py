"""Provider routing plugins: ``only`` filters, ``zdr`` filters to no-retention providers, ``order`` ranks."""

from __future__ import annotations

from typing import Any

from router_core import BadRequest, RequestContext


def provider_list(ctx: RequestContext, field: str) -> list[str] | None:
    """The request's ``gateway.<field>`` as provider names, or ``None`` when not asked for.

    The field is declared as ``Any`` and checked here: the core's converter would
    turn a string into a list of its characters, and ``"openai"`` must be a 400,
    not a request restricted to providers ``o``, ``p`` … .
    """
    value: Any = ctx.gateway.get(field)
    if value is None:
        return None
    param = f"gateway.{field}"
    if not isinstance(value, list):
        raise BadRequest(
            f"Invalid value for '{param}': expected a list of provider names.",
            param=param,
            code="invalid_gateway_field",
        )
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise BadRequest(
                f"Invalid value for '{param}[{i}]': expected a non-empty provider name.",
                param=f"{param}[{i}]",
                code="invalid_gateway_field",
            )
    return value
