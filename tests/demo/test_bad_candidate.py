"""The demo's deliberately bad version: the good one with its head's classes permuted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.demo.story import bad_candidate
from monitor.registry import Preprocessing, Registry
from monitor.store import Store
from tests.conftest import make_tiny_bert

TEXTS = ["good phone", "bad battery", "great food", "awful movie", "love it", "hate this service",
         "the food was not very good", "it is a great movie and", "battery is bad", "very good"]


def test_the_bad_candidate_predicts_another_class_on_every_row(tmp_path: Path) -> None:
    with Store(":memory:") as store:
        registry = Registry(store, tmp_path / "models")
        good = registry.register("m", make_tiny_bert(tmp_path / "tiny", num_labels=3), version="v1",
                                 preprocessing=Preprocessing(labels=("a", "b", "c")), status="active")
        bad = registry.register("m", bad_candidate(good, tmp_path / "bad"), parent="v1",
                                preprocessing=good.preprocessing)
        probs = {mv.version: registry.load_encoder(mv, device="cpu").encode(TEXTS).probs
                 for mv in (good, bad)}
    p_good, p_bad = np.asarray(probs["v1"]), np.asarray(probs[bad.version])
    # class j of the bad head is class j-1 of the good one: the same scores, rotated
    np.testing.assert_allclose(p_bad, np.roll(p_good, 1, axis=1), atol=1e-6)
    assert (p_bad.argmax(1) != p_good.argmax(1)).all()
    assert bad.parent_version == "v1" and bad.weights_sha256 != good.weights_sha256
