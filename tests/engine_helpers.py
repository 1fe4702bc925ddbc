"""Helpers for tests that drive a GGUF engine (in-process or in its child process)."""

from __future__ import annotations


def chat(engine, text: str) -> str:
    """A one-question conversation in the engine's own chat format."""
    return engine.render(
        [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}]
    )


def collect(gen) -> tuple[str, object]:
    """All of a generate() stream: the text, and its last item (the figures)."""
    pieces = list(gen)
    return "".join(p for p in pieces if isinstance(p, str)), pieces[-1]
