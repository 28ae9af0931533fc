"""Deterministic generated English-like text for examples and benchmarks (no download).

Words are drawn with Zipf-like frequencies from a fixed vocabulary, so the output resembles real
text for a word count: a few very common words and a long tail.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

__all__ = ["generate_text", "vocabulary"]

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "de",
    "bra",
    "cor",
    "fen",
    "gal",
    "hin",
    "jor",
    "kel",
    "lun",
    "mar",
    "nor",
    "pel",
    "quo",
    "ris",
    "sel",
    "tor",
    "ul",
    "ven",
    "wis",
    "yar",
    "zen",
    "an",
    "ber",
    "cal",
    "dor",
    "el",
    "fa",
    "gor",
    "ha",
    "is",
    "ju",
]
_COMMON = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "it",
    "that",
    "was",
    "for",
    "on",
    "with",
    "as",
    "at",
    "by",
    "this",
    "from",
    "or",
    "but",
    "not",
    "are",
    "be",
    "which",
    "river",
]


def vocabulary(size: int = 30_000, seed: int = 7) -> list[str]:
    """``size`` distinct words: common English words first, then invented ones.

    >>> vocabulary(5)
    ['the', 'of', 'and', 'to', 'a']
    """
    rng = random.Random(seed)
    words = list(_COMMON[:size])
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def generate_text(path: str | Path, size_bytes: int, seed: int = 1) -> Path:
    """Write about ``size_bytes`` of text lines to ``path`` (same seed, same bytes).

    >>> import tempfile, os
    >>> p = generate_text(os.path.join(tempfile.mkdtemp(), "t.txt"), 2000)
    >>> 2000 <= p.stat().st_size < 2200
    True
    """
    rng = random.Random(seed)
    words = vocabulary()
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", encoding="utf-8") as f:
        while written < size_bytes:
            block = []
            for _ in range(1000):
                n = rng.randint(6, 16)
                line = " ".join(rng.choices(words, cum_weights=weights, k=n))
                if rng.random() < 0.1:
                    line = line.capitalize() + "."
                block.append(line)
                written += len(line) + 1
                if written >= size_bytes:
                    break
            f.write("\n".join(block) + "\n")
    return path
