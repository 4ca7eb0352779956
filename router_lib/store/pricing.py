"""What a request cost, from the ``[models.*]`` prices: one function, so budgets and the ledger agree."""

from __future__ import annotations

from typing import Any


def cost_usd(config: Any, model: str | None, input_tokens: int, output_tokens: int) -> float:
    """USD for ``model``'s tokens at its ``[models."<model>"]`` prices; 0 for a model without prices."""
    prices = config.models.get(model) if model else None
    if prices is None:
        return 0.0
    return (input_tokens * prices.input_per_mtok + output_tokens * prices.output_per_mtok) / 1_000_000
