"""Everyday topics that no tag may cover: the rivals a tag must beat for a prompt to get that tag.

Written once, before any evaluation, as the kinds of things people ask a gateway about;
a topic that one of the request's own tags covers (``intent.COVERED``) is left out. The
keyword cue lists that used to live here are gone: common words ("go", "function",
"mean") fired them on prompts of every kind.
"""

from __future__ import annotations

TOPICS: tuple[str, ...] = (
    "cooking, recipes and food",
    "travel, trips and tourism",
    "sports, exercise and fitness",
    "music, films and entertainment",
    "personal finance, saving and investing money",
    "law and legal questions",
    "medicine, health and symptoms",
    "programming, code and software",
    "mathematics and calculations",
    "physics",
    "chemistry",
    "biology and living things",
    "history and past events",
    "geography, countries and places",
    "politics and government",
    "economics and business",
    "psychology, feelings and relationships",
    "philosophy, ethics and religion",
    "literature, novels and poetry",
    "writing, editing and rewriting text",
    "translation between languages",
    "customer support: accounts, orders and billing",
    "shopping and product recommendations",
    "technology, computers and gadgets",
    "games and puzzles",
    "education, school and studying",
    "careers, jobs and the workplace",
    "art, drawing and design",
    "animals and pets",
    "home, garden and repairs",
    "cars and transport",
    "weather, climate and nature",
    "words, language and grammar",
    "news and current events",
    "trivia and general facts",
    "reading a passage and answering questions about it",
    "logic and reasoning",
    "greetings and small talk",
    "summarising documents",
    "data analysis and spreadsheets",
)
