"""Synthetic labelled sentences over the tiny BERT vocabulary (seeded)."""

from __future__ import annotations

import random

from monitor.retrain.trainer import Examples

POS = ("good", "great", "love")
NEG = ("bad", "awful", "hate")


def sentences(n: int, *, seed: int, domain: str = "phone", labels: tuple[str, str] = ("neg", "pos"),
              noise: float = 0.0) -> Examples:
    """``n`` sentences whose sentiment word decides the label (``noise`` = share of flipped labels)."""
    rnd = random.Random(seed)
    texts: list[str] = []
    labs: list[str] = []
    for _ in range(n):
        y = rnd.random() < 0.5
        word = rnd.choice(POS if y else NEG)
        texts.append(f"the {domain} is {word}" if rnd.random() < 0.7 else f"{word} {domain} it was")
        if rnd.random() < noise:
            y = not y
        labs.append(labels[int(y)])
    return Examples(texts, labs)
