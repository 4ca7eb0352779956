"""Does the prompt ask for an image as output ("draw a cat"), not about one ("describe this image")?"""

from __future__ import annotations

import re

_NOUNS = (
    r"(?:image|picture|pic|photo|photograph|illustration|drawing|painting|sketch|logo|icon|portrait|wallpaper|poster|"
    r"avatar|artwork|art|render|banner|thumbnail|cartoon|meme|comic|tattoo|sprite|clip ?art|watercolou?r|"
    r"digital art|pixel art|oil painting)s?"
)
# "make/create/generate … <noun>": the noun names what comes back.
_MAKE_NOUN = re.compile(
    rf"\b(?:generate|create|make|produce|design|render|give me|show me|i(?:'d| would) like|i want|i need|paint me|draw me)"
    rf"\b[^.?!\n]{{0,40}}?\b{_NOUNS}\b(?! (?:uploads?|sensors?|editors?|processing|formats?|files?|gallery|library|api|storage))",
    re.I,
)
# Verbs whose output is a picture whatever follows ("draw a cat", "paint the sea").
_DEPICT = re.compile(
    r"\b(?:draw|paint|sketch|illustrate|doodle)\b(?! (?:up|on|from|in|conclusions?|attention|a line under)\b)", re.I
)
# A bare description that starts with the noun ("A photo of a retriever surfing").
_NOUN_OF = re.compile(rf"^\W*(?:an? |the )?(?:\w+ ){{0,2}}{_NOUNS} of\b", re.I)
# About an existing image, or about making images in the abstract: not a request for one.
_NOT_OUTPUT = re.compile(
    r"\b(?:this|the|that|my|attached|uploaded|above|following) (?:image|picture|photo|chart|screenshot)\b"
    r"|\b(?:docker|container|disk|vm|ami|iso|base|os|system|boot) images?\b"
    r"|^\W*(?:how|explain|why|what|who|is|are|does)\b|\bhow (?:do|can|to|does|should)\b"
    r"|\b(?:code|python|javascript|css|html|svg|script|function|pillow|opencv|matplotlib|word document|brief|just text)\b",
    re.I,
)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")


def wants_image(prompt: str) -> tuple[bool, str]:
    """(whether the prompt asks for a generated image, the cue that decided)."""
    head = prompt[:600]  # the ask is in the first sentences; a long paste after it says nothing
    hit = _MAKE_NOUN.search(head) or _DEPICT.search(head) or _NOUN_OF.search(head)
    if hit is None:
        return False, "no image request"
    veto = _NOT_OUTPUT.search(_QUOTED.sub("", head))  # a title in quotes is content, not the ask
    if veto is not None:
        return False, f"'{hit.group(0).strip()}' but '{veto.group(0)}'"
    return True, f"asks: '{hit.group(0).strip()}'"
