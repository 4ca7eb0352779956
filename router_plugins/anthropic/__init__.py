"""The ``anthropic`` provider kind: the Anthropic Messages API behind the OpenAI dialects."""
