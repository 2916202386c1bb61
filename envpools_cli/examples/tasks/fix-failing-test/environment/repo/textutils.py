"""Small text helpers."""

import re

__all__ = ["slugify", "word_count"]


def slugify(text: str) -> str:
    """Lower-case words joined by single hyphens: 'Hello, World!' -> 'hello-world'."""
    words = re.findall(r"[a-z0-9]+", text)
    return "-".join(words)


def word_count(text: str) -> int:
    """Number of words (runs of letters or digits) in ``text``."""
    return len(re.findall(r"[A-Za-z0-9]+", text))
