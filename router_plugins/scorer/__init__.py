"""The local scorer: intent, complexity and context scores computed on the request, lazily."""
