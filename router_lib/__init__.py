"""Libraries several plugins share (text, tokens, embeddings); not plugins, and importing one changes nothing."""
