"""Which earlier turns a prompt needs, and how long blocks are shortened, on a Call."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from router_core import TEXT, Call, Message
from router_lib.words import content_stems, last_user_index

if TYPE_CHECKING:
    from router_lib.embedding import TextEmbedder as Embedder

log = logging.getLogger("llm_router.history")

# Shared content words that make an old turn worth keeping for a prompt that does not depend on the history.
MIN_SHARED_WORDS = 2
# WordLlama cosine similarity (prompt vs the turn's joined text) that keeps a turn sharing fewer words:
# "going back to the database issue — how many connections should the pool allow?" against a turn
# about "the Postgres connection pool exhausting under load" scores 0.51–0.59. Chosen on 26 hand-written
# reworded follow-ups (each against the turn it is about) and 258 follow-up/unrelated-turn pairs from
# 16 topics (databases, Kubernetes, React, Redis, git, ML training, cooking, hiking, gardening, salaries…):
# unrelated pairs sit around 0.0 (95th percentile 0.20, most of those above 0.2 share a word such as
# "memory"); at 0.25, 18 of 26 follow-ups are kept (words alone: 2 of the 16 in the hard set) for 6 of 258
# unrelated turns (2.3%) kept needlessly. Raising it to 0.28 halves those but loses a follow-up at
# 0.27; lowering it to 0.2 doubles them for two more follow-ups. Wrongly keeping a turn costs tokens,
# wrongly dropping one costs the answer, hence the lower end of the gap.
MIN_SIMILARITY = 0.25
# Each old turn is judged by its opening: tokenising whole 2,000-character replies made a
# 20-turn conversation cost ~12 ms of event-loop time; what a turn is about shows in its
# first sentences (~50 words).
TURN_CHARS = 300


@attrs.frozen
class Limits:
    """``[plugins.history]``: a text block longer than ``max_chars`` keeps its head and tail."""

    max_chars: int = attrs.field(default=2000, validator=attrs.validators.ge(0))
    head_chars: int = attrs.field(default=800, validator=attrs.validators.ge(0))
    tail_chars: int = attrs.field(default=400, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if not self.head_chars + self.tail_chars < self.max_chars:
            raise ValueError(
                f"'max_chars' must be greater than head_chars + tail_chars "
                f"({self.head_chars} + {self.tail_chars}), got {self.max_chars}"
            )


@attrs.define
class Compression:
    """What was done: the dropped messages, the shortened blocks (before, after), the turns kept and why."""

    dropped: list[Message] = attrs.field(factory=list)
    shortened: list[tuple[str, str]] = attrs.field(factory=list)
    kept_turns: list[str] = attrs.field(factory=list)


def compress(call: Call, limits: Limits, embedder: Embedder | None = None) -> Compression:
    """Drop earlier turns unrelated to the prompt and shorten long blocks in the rest, in place.

    A turn (a user message and the replies up to the next one) is related when it shares
    ``MIN_SHARED_WORDS`` content words with the prompt or, given an embedder, its WordLlama
    similarity to the prompt is at least ``MIN_SIMILARITY`` (a reworded question).

    Kept whatever happens: system/developer messages and instructions, the latest user
    message and everything after it (an ongoing tool loop), and tool calls with their results
    (a message linked to a kept one by a tool-call id is kept too).
    """
    last = last_user_index(call.messages)
    if last is None:
        return Compression()
    prompt_text = call.messages[last].text
    prompt = content_stems(prompt_text)
    keep = [i >= last or _pinned(m) for i, m in enumerate(call.messages)]
    turns = [(turn, " ".join(call.messages[i].text for i in turn)) for turn in _turns(call.messages[:last])]
    related = [_shares_words(prompt, text) for _, text in turns]
    if embedder is not None and prompt_text.strip():
        # Only the turns words did not keep are embedded, and only those with text.
        pending = [k for k, (_, text) in enumerate(turns) if not related[k] and text.strip()]
        for k in _similar(prompt_text, [turns[k][1] for k in pending], embedder):
            related[pending[k]] = True
    kept_turns = []
    for (turn, _), is_related in zip(turns, related, strict=True):
        if is_related:
            kept_turns.append(_label(call.messages[turn[0]]))
            for i in turn:
                keep[i] = True
    _keep_tool_pairs(call.messages, keep)
    result = Compression(kept_turns=kept_turns)
    messages = []
    for i, (message, kept) in enumerate(zip(call.messages, keep, strict=True)):
        if not kept:
            result.dropped.append(message)
            continue
        if i < last and not _pinned(message):
            result.shortened += _shorten(message, limits)
        messages.append(message)
    call.messages[:] = messages
    return result


def _shares_words(prompt: frozenset[str], text: str) -> bool:
    shared = prompt & content_stems(text)
    return bool(shared) and len(shared) >= min(MIN_SHARED_WORDS, len(prompt))


def _similar(prompt: str, texts: list[str], embedder: Embedder) -> list[int]:
    """Indices of the ``texts`` whose similarity to the prompt reaches ``MIN_SIMILARITY``; none on failure."""
    if not texts:
        return []
    try:
        # Embedded uncached (conversation text does not repeat); turns cut to TURN_CHARS.
        similarity = embedder.similarity_to_texts(prompt, [text[:TURN_CHARS] for text in texts])
    except Exception as exc:  # words alone still decide
        log.warning("turn similarity failed (%s); turns kept on shared words only", type(exc).__name__)
        return []
    return [k for k, s in enumerate(similarity) if float(s) >= MIN_SIMILARITY]


def shorten_text(text: str, limits: Limits) -> str:
    """Head … marker … tail, cut at whitespace where possible."""
    if len(text) <= limits.max_chars:
        return text
    head = (
        text[: limits.head_chars].rsplit(None, 1)[0] if " " in text[: limits.head_chars] else text[: limits.head_chars]
    )
    tail_start = len(text) - limits.tail_chars
    tail = text[tail_start:].split(None, 1)[-1] if " " in text[tail_start:] else text[tail_start:]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[… {omitted} characters omitted by llm-router …]\n{tail}"


def _shorten(message: Message, limits: Limits) -> list[tuple[str, str]]:
    changes = []
    for part in message.parts:
        if part.kind == TEXT and part.text and len(part.text) > limits.max_chars:
            short = shorten_text(part.text, limits)
            changes.append((part.text, short))
            part.text = short
    return changes


def _pinned(message: Message) -> bool:
    return message.role in ("system", "developer") or message.instructions


def _turns(messages: list[Message]) -> list[list[int]]:
    """Indices of earlier conversational messages grouped into turns, each starting at a user message."""
    turns: list[list[int]] = []
    for i, message in enumerate(messages):
        if _pinned(message):
            continue
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(i)
    return turns


def _keep_tool_pairs(messages: list[Message], keep: list[bool]) -> None:
    """Keep both sides of every tool call: never a result without its call, nor the reverse."""
    owner: dict[str, int] = {}
    for i, message in enumerate(messages):
        for tool_call in message.tool_calls:
            owner[tool_call.id] = i
    linked: dict[int, set[int]] = {}
    for i, message in enumerate(messages):
        if message.tool_call_id is not None and message.tool_call_id in owner:
            j = owner[message.tool_call_id]
            linked.setdefault(i, set()).add(j)
            linked.setdefault(j, set()).add(i)
    pending = [i for i in linked if keep[i]]
    while pending:
        for j in linked[pending.pop()]:
            if not keep[j]:
                keep[j] = True
                pending.append(j)


def _label(message: Message) -> str:
    text = " ".join(message.text.split())
    return text[:40] + ("…" if len(text) > 40 else "")
