"""Planning: ``executor:planning:planner`` lets a planner write a plan the executor follows."""

from __future__ import annotations

import asyncio
import copy
import logging

from router_core import TEXT, BadRequest, Call, GatewayField, Manifest, Message, Part, RequestContext, Usage, hookimpl

log = logging.getLogger("llm_router.planning")

# A tag may choose a planning model string, which this plugin then resolves.
MANIFEST = Manifest(requires_scores=("complexity",), after=("tags",))
SEPARATOR = ":planning:"
DEFAULT_TRIGGER = 0.6
PLANNER_PROMPT = (
    "You are a planner. Do not answer the user's request. Write only a concise, numbered, step-by-step plan "
    "that another model will follow to answer it: the steps, what to check, and pitfalls to avoid."
)
PLAN_HEADER = "Follow this plan, written for this request by a planning model:\n"
# The plan is an optimisation: past this many seconds the executor answers without one,
# instead of every planned request waiting out the provider's own (minutes-long) bound.
PLANNER_TIMEOUT = 15.0


def _unit(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")


@hookimpl
def gateway_fields():
    return {"planningTriggerScore": GatewayField(float, check=_unit)}


def parse(model: str) -> tuple[str, str] | None:
    """``executor:planning:planner`` → (executor, planner); None when it is not a planning string."""
    if SEPARATOR not in model:
        return None
    executor, _, planner = model.partition(SEPARATOR)
    for part in (executor, planner):
        vendor, _, name = part.partition("/")
        if not vendor or not name or SEPARATOR in part:
            raise BadRequest(
                f"'{model}' is not a planning model string; expected 'provider/executor:planning:provider/planner'.",
                param="model",
                code="invalid_planning_model",
            )
    return executor, planner


@hookimpl
async def select_model(ctx: RequestContext) -> str | None:
    models = parse(ctx.call.model)
    if models is None:
        return None
    executor, planner = models
    trigger = ctx.gateway.get("planningTriggerScore", DEFAULT_TRIGGER)
    complexity = (await ctx.scores("complexity")).get("complexity", 0.5)
    state = ctx.plugin_state["planning"] = {"planner": planner, "complexity": complexity, "trigger": trigger}
    if complexity <= trigger:
        state["planned"] = False
        return executor
    try:
        async with asyncio.timeout(PLANNER_TIMEOUT):
            reply = await ctx.complete(planner_call(ctx.call, planner))
    except Exception as exc:  # planning is an optimisation: the executor still answers
        log.warning("planner %s failed (%s); the executor answers alone", planner, type(exc).__name__)
        state["planned"] = False
        state["error"] = type(exc).__name__
        return executor
    plan = reply.text.strip()
    state["planned"] = bool(plan)
    if plan:
        inject_plan(ctx.call, plan)
        ctx.headers["x-router-planner"] = planner
    ctx.add_usage_detail("planning_usage_details", planning_usage(ctx, planner, reply.usage))
    return executor


def planner_call(call: Call, planner: str) -> Call:
    """The conversation so far (already redacted) under a planning-only system prompt, no tools."""
    messages = [Message.of_text("system", PLANNER_PROMPT)]
    messages += [copy.deepcopy(m) for m in call.messages if m.item is None]
    for m in messages:
        m.instructions = False  # the planner gets its own instructions only as a system message
    return Call(dialect="chat", model=planner, messages=messages)


def inject_plan(call: Call, plan: str) -> None:
    """Extend the executor's instructions (Responses) or leading system message (Chat) with the plan."""
    text = PLAN_HEADER + plan
    responses = call.dialect == "responses"
    for message in call.messages:
        if (message.instructions if responses else message.role in ("system", "developer")) and all(
            p.kind == TEXT for p in message.parts
        ):
            message.parts = [Part(TEXT, f"{message.text}\n\n{text}" if message.text else text)]
            message.as_string = True
            return
    call.messages.insert(0, Message.of_text("system", text, instructions=responses))


def planning_usage(ctx: RequestContext, planner: str, usage: Usage) -> dict[str, float | int]:
    prices = ctx.config.models.get(planner)
    cost = 0.0
    if prices is not None:
        cost = (usage.input_tokens * prices.input_per_mtok + usage.output_tokens * prices.output_per_mtok) / 1e6
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cost": round(cost, 8),
    }
