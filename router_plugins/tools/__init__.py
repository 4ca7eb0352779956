"""Tool optimisation: send only the tools the prompt may need, with what they depend on."""
