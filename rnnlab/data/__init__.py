"""Data: vocabularies, text streams for truncated BPTT, and the built-in tiny Shakespeare."""
