"""Context scores: how much the prompt needs the history, each earlier media part, each tool."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from router_core import AUDIO, FILE, IMAGE, MEDIA_KINDS, Call, Message, Tool
from router_lib.words import (
    CACHED_TEXT_CHARS,
    cached_stems,
    content_stems,
    last_user_index,
    split_identifier,
    words,
)

if TYPE_CHECKING:
    from .embed import Embedder

# ---------------------------------------------------------------- history dependency

NEW_TOPIC = re.compile(
    r"\b(new (topic|question|subject)|unrelated|different (topic|question|subject)|change of (topic|subject)|"
    r"switching (gears|topics?)|on another note|forget (that|this|the above|everything|previous)|"
    r"something (else|different) entirely|start(ing)? over|from scratch)\b"
)
# References that only make sense against earlier turns.
STRONG_REFERENCE = re.compile(
    r"\b(above|earlier|previous(ly)?|before|aforementioned|again|instead|"
    r"you (just )?(sent|said|wrote|mentioned|gave|suggested|showed|shared|provided|listed|described|explained)|"
    r"i (just )?(sent|said|wrote|mentioned|gave|shared|uploaded|attached|asked)|as (i|you) (said|mentioned)|"
    r"your (answer|reply|response|code|example|suggestion|solution|last|previous|version|list|explanation)|"
    r"(the|that|this) (same|last|first|second|third|fourth|other|previous|next) (one|file|item|option|point|step|"
    r"example|version|part|function|error|image|question|answer|approach|idea|paragraph|line)|"
    r"(first|second|third|last) (one|option|point|step|file)|so far|the rest|the others?|both of them)\b"
)
CONTINUATION_START = re.compile(
    r"^\s*(and|but|so|also|then|ok(ay)?|yes|yeah|no|nope|thanks|thank you|great|cool|what about|how about|"
    r"why( not)?|really|sure|more|continue|go on|keep going|expand|elaborate|shorter|longer|another|"
    r"now (do|make|change|add|try|rewrite|translate)|can you (also|explain|elaborate|expand)|what if)\b"
)
# "this"/"that" are only anaphora when they stand alone ("fix that", "is this right?"), not in "a query that counts".
PRONOUN = re.compile(
    r"\b(it|its|they|them|those|these|he|she|him|her)\b|\b(this|that)\s*([?.!,]|$|(is|was|does|did|one|part|bit|again)\b)"
)
# "what does it say?", "describe this": a pronoun that can only mean something just sent.
MEDIA_PRONOUN = re.compile(
    r"\b(it|this|that|these|those|them)\s*[?.!]*\s*$|\b(it|this|that|they) (says?|shows?|means?|contains?|depicts?|looks?|sounds?)\b"
)
FOLLOW_UP_VERB = re.compile(
    r"^\s*(fix|change|rewrite|shorten|translate|summari[sz]e|explain|improve|refactor|redo|retry|simplify)\b"
)


def history_dependency(call: Call, embedder: Embedder | None) -> tuple[float, str]:
    """0..1: how much the latest user message depends on the turns before it, and why."""
    last = last_user_index(call.messages)
    if last is None:
        return 0.0, "no user message"
    if any(m.role == "tool" or m.tool_calls for m in call.messages[last + 1 :]):
        return 1.0, "tool-call continuity: the model is answering a tool result"
    earlier = [m for m in call.messages[:last] if _conversational(m)]
    if not earlier:
        return 0.0, "no earlier turns"
    prompt = call.messages[last].text.strip()
    if not prompt:
        return 1.0, "the latest message has no text (media only): keep its context"
    low = prompt.lower()
    if NEW_TOPIC.search(low):
        return 0.1, "explicit new topic"
    cues: list[tuple[float, str]] = []
    if match := STRONG_REFERENCE.search(low):
        cues.append((0.95, f"refers back ({match.group(0)!r})"))
    if match := CONTINUATION_START.search(low) or FOLLOW_UP_VERB.search(low):
        cues.append((0.8, f"continues the conversation ({match.group(0).strip()!r})"))
    if match := PRONOUN.search(" ".join(low.split()[:8])):
        cues.append((0.7, f"anaphora early in the prompt ({match.group(0)!r})"))
    if len(words(low)) <= 3:
        cues.append((0.7, "very short prompt"))
    similarity, how = _history_similarity(prompt, earlier, embedder)
    cues.append((similarity, how))
    score, reason = max(cues)
    return round(min(score, 1.0), 3), reason


def _history_similarity(prompt: str, earlier: list[Message], embedder: Embedder | None) -> tuple[float, str]:
    # The last few turns carry the topic; older ones would dilute the signal.
    recent = [m.text[:2000] for m in earlier[-4:] if m.text]
    if not recent:
        return 0.0, "no earlier text"
    if embedder is not None:
        best = float(embedder.similarity_to_texts(prompt, recent).max())
        # WordLlama: unrelated turns sit near 0.1, the same subject near 0.45 and above.
        return max(0.0, min(1.0, (best - 0.15) / 0.35)) * 0.9, f"semantic similarity to recent turns {best:.2f}"
    mine = content_stems(prompt)
    if not mine:
        return 0.0, "no content words"
    shared = max(len(mine & content_stems(text)) for text in recent)
    return min(1.0, shared / len(mine) * 1.5) * 0.9, f"{shared} content words shared with recent turns"


def _conversational(message: Message) -> bool:
    return message.role not in ("system", "developer") and not message.instructions


# ---------------------------------------------------------------- media relevance

KIND_WORDS = {
    IMAGE: r"image|picture|pic|photo|photograph|screenshot|screen ?shot|screen|diagram|chart|graph|plot|figure|"
    r"drawing|sketch|logo|scan|illustration|visual|mockup|wireframe|ui",
    AUDIO: r"audio|recording|record|clip|voice|sound|song|music|podcast|voicemail|transcri\w*|listen\w*|hear\w*",
    FILE: r"file|pdf|document|doc|attachment|report|spreadsheet|csv|sheet|page|slide|deck|contract|invoice|paper",
}
KIND_PATTERNS = {kind: re.compile(rf"\b({words_})s?\b") for kind, words_ in KIND_WORDS.items()}
DEICTIC_MEDIA = {
    kind: re.compile(
        rf"\b(this|that|the|these|those|your|my|attached|uploaded|above|previous|first|second|last)\b"
        rf"(\s+\w+)?\s+({words_})s?\b"
    )
    for kind, words_ in KIND_WORDS.items()
}
ANY_MEDIA = re.compile(
    r"\b(attached|attachment|uploaded|i (sent|shared|uploaded|attached)|you (can )?see|shown|look at|looking at|"
    r"in the (picture|image|file)|what does it (say|show)|what('s| is) (in|on) (it|there))\b"
)
VISUAL_VERB = re.compile(r"\b(see|look|shows?|shown|depict\w*|visible|colou?rs?|read the|describe)\b")


def media_relevance(call: Call, embedder: Embedder | None) -> dict[str, float]:
    """Per media part before the latest user message, keyed ``"<message>:<part>"``: 0..1 how much the prompt needs it."""
    last = last_user_index(call.messages)
    if last is None:
        return {}
    prompt = call.messages[last].text.lower()
    located = [
        (i, j, part)
        for i, message in enumerate(call.messages[:last])
        for j, part in enumerate(message.parts)
        if part.kind in MEDIA_KINDS
    ]
    if not located:
        return {}
    newest = {part.kind: (i, j) for i, j, part in located}  # the latest of each kind wins "the image"
    captions = [call.messages[i].text[:1000] for i, _, _ in located]
    similar = _caption_similarity(prompt, captions, embedder)
    scores: dict[str, float] = {}
    for (i, j, part), caption_sim in zip(located, similar, strict=True):
        score = 0.0
        name = _media_name(part)
        if name and (name.lower() in prompt or ((stem_ := _stem_name(name)) and stem_ in prompt)):
            score = 1.0
        elif DEICTIC_MEDIA[part.kind].search(prompt) or KIND_PATTERNS[part.kind].search(prompt):
            score = 0.9 if newest[part.kind] == (i, j) else 0.7
        elif ANY_MEDIA.search(prompt):
            score = 0.7
        elif part.kind == IMAGE and VISUAL_VERB.search(prompt) and newest[IMAGE] == (i, j):
            score = 0.6
        elif MEDIA_PRONOUN.search(prompt) and i == last_user_index(call.messages, before=last):
            score = 0.6  # "what does it mean?" right after sending something
        scores[f"{i}:{j}"] = round(max(score, caption_sim), 3)
    return scores


def _caption_similarity(prompt: str, captions: list[str], embedder: Embedder | None) -> list[float]:
    """The prompt against the text sent with each media part: "here is the Q3 revenue chart" → "did Q3 revenue grow?"."""
    if embedder is None or not prompt.strip():
        mine = content_stems(prompt)
        return [min(0.8, 0.2 * len(mine & content_stems(c))) if c else 0.0 for c in captions]
    sims = embedder.similarity_to_texts(prompt, [c or "." for c in captions])
    # Only a clear topical match counts: WordLlama puts unrelated text near 0.1.
    return [max(0.0, min(0.8, (float(s) - 0.3) / 0.3)) if c else 0.0 for s, c in zip(sims, captions, strict=True)]


def _media_name(part: object) -> str | None:
    source = getattr(part, "source", {})
    name = source.get("filename")
    if not name:
        url = source.get("url") or ""
        if url and not url.startswith("data:"):
            name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    return name or None


def _stem_name(name: str) -> str:
    base = name.rsplit(".", 1)[0]
    return base.lower() if len(base) >= 4 else ""


# ---------------------------------------------------------------- tool relevance

MATH = re.compile(
    r"\d\s*[-+*/x×÷^%]\s*\d|\b(multipl\w*|times|plus|minus|divided|sum|product|square root|percent(age)?|"
    r"calculat\w*|compute|arithmetic|how much is|average|mean of)\b"
)
MATH_TOOL = re.compile(r"\b(calculat\w*|math\w*|arithmetic|expression|compute\w*|evaluate)\b")


# The prompt's words matched against tool texts: well past any real prompt's request part.
LEXICAL_CHARS = 20_000


def tool_relevance(call: Call, embedder: Embedder | None) -> dict[str, float]:
    """Per tool name: 0..1 how likely the prompt needs it (similarity plus lexical cues, combined as a noisy-or)."""
    if not call.tools:
        return {}
    prompt = call.prompt
    # Bounded: stemming a client's 8 MB prompt would hold the event loop for seconds.
    mine = content_stems(prompt[:LEXICAL_CHARS])
    is_math = bool(MATH.search(prompt[:LEXICAL_CHARS].lower()))
    texts = [_tool_text(tool) for tool in call.tools]
    if embedder is not None and prompt.strip():
        # WordLlama: a matching tool scores 0.25–0.5 against a prompt, an unrelated one up to about 0.2.
        semantic = [max(0.0, min(1.0, (float(s) - 0.15) / 0.25)) for s in embedder.similarity(prompt, texts)]
    else:
        semantic = [0.0] * len(texts)
    scores: dict[str, float] = {}
    for tool, text, sem in zip(call.tools, texts, semantic, strict=True):
        name_stems = cached_stems(split_identifier(tool.name))
        name_hit = len(name_stems & mine) / len(name_stems) if name_stems else 0.0
        overlap = len((cached_stems(text) - name_stems) & mine)
        lexical = 0.5 * name_hit + 0.15 * min(overlap, 4)
        if is_math and MATH_TOOL.search(text.lower()):
            lexical += 0.5
        score = 1 - (1 - sem) * (1 - min(lexical, 1.0))
        scores[tool.name] = round(max(scores.get(tool.name, 0.0), score), 3)
    return scores


def _tool_text(tool: Tool) -> str:
    """What a tool is about: its name split into words, its description and its parameter names."""
    params = (tool.parameters or {}).get("properties") or {}
    names = " ".join(split_identifier(str(p)) for p in params) if isinstance(params, dict) else ""
    kind = "" if tool.type == "function" else tool.type.replace("_", " ")
    text = f"{split_identifier(tool.name)} {kind}: {tool.description[:1000]} {names}"
    return text[:CACHED_TEXT_CHARS].strip()  # cached by text: bounded whatever the client sends
