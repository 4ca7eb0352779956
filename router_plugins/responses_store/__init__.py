"""The response store: gateway ``gen_…`` ids kept with their input and output, so the Responses API is stateful over every provider."""
