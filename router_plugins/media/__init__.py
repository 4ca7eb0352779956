"""Media optimisation: earlier images, audio and files the prompt does not need become short text markers."""
