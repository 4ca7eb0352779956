"""The ``redact`` plugin: mask PII and secrets before any text leaves the gateway."""
