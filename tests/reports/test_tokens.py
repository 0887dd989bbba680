"""What-changed words: weighted log-odds with an informative Dirichlet prior, [UNK] words."""

from __future__ import annotations

import math
from collections import Counter

from reports.tokens import count_words, over_represented, unknown_words, words


def test_words_lowercases_and_keeps_inner_apostrophes() -> None:
    assert words("Don't PANIC: the 2 refunds_are here!") == ["don't", "panic", "the", "2", "refunds",
                                                            "are", "here"]


def test_new_topic_word_tops_the_list_and_common_words_do_not_appear() -> None:
    base = "the phone battery is good and the screen is bright"
    ref = count_words([base] * 200)
    cur = count_words([base] * 150 + [base + " refund refund scam"] * 50)
    top = over_represented(ref, cur)
    assert [t.token for t in top] == ["refund", "scam"]
    assert top[0].current_count == 100 and top[0].reference_count == 0
    assert top[0].z > top[1].z > 1.96
    assert all(t.token not in base.split() for t in top)


def test_z_matches_the_monroe_formula_on_a_tiny_example() -> None:
    ref = Counter({"a": 10, "b": 90})
    cur = Counter({"a": 40, "b": 60})
    (shift,) = over_represented(ref, cur, prior_strength=20.0, min_z=0.0, min_count=1)[:1]
    n_r, n_c, a0 = 100, 100, 20.0
    a = a0 * 50 / 200
    delta = math.log((40 + a) / (n_c + a0 - 40 - a)) - math.log((10 + a) / (n_r + a0 - 10 - a))
    z = delta / math.sqrt(1 / (40 + a) + 1 / (10 + a))
    assert shift.token == "a"
    assert math.isclose(shift.z, z, rel_tol=1e-12)
    assert math.isclose(shift.current_rate, 400.0) and math.isclose(shift.reference_rate, 100.0)


def test_prior_shrinks_rare_words_below_frequent_ones_with_the_same_ratio() -> None:
    ref = Counter({"filler": 10_000, "rare": 1, "common": 10})
    cur = Counter({"filler": 10_000, "rare": 5, "common": 50})
    top = over_represented(ref, cur, min_z=0.0)
    z = {t.token: t.z for t in top}
    assert z["common"] > z["rare"]


def test_no_words_on_identical_windows_or_empty_sides() -> None:
    c = count_words(["same words here again"] * 30)
    assert over_represented(c, c) == []
    assert over_represented(Counter(), c) == []


def test_unknown_words_with_a_tokenizer_check_and_the_new_word_fallback() -> None:
    ref = count_words(["good phone"] * 10)
    cur = count_words(["good phone zxq", "zxq blorp", "phone blorp", "great"])
    vocab = {"good", "phone", "great"}
    found, method = unknown_words(ref, cur, is_unknown=lambda ws: [w not in vocab for w in ws])
    assert method == "tokenizer"
    assert [(u.word, u.current_count) for u in found] == [("blorp", 2), ("zxq", 2)]
    found, method = unknown_words(ref, cur)
    assert method == "new-word"
    assert [u.word for u in found] == ["blorp", "zxq"]  # "great" is new but seen only once


def test_emoji_and_symbols_are_words_of_their_own() -> None:
    assert words("great 😀😀 phone™, ok!") == ["great", "😀", "😀", "phone", "™", "ok"]
    ref = count_words(["good phone"] * 10)
    cur = count_words(["good phone 😀", "😀 nice"])
    found, _ = unknown_words(ref, cur, is_unknown=lambda ws: [w == "😀" for w in ws])
    assert [(u.word, u.current_count) for u in found] == [("😀", 2)]


def test_ranked_words_mark_significance_after_correction() -> None:
    base = "the phone battery is good and the screen is bright"
    ref = count_words([base] * 200)
    strong = over_represented(ref, count_words([base] * 150 + [base + " refund"] * 50), min_z=0.0)
    assert strong[0].token == "refund" and strong[0].significant
    weak = over_represented(ref, count_words([base] * 197 + [base + " refund"] * 3), min_z=0.0)
    assert weak and weak[0].token == "refund" and not weak[0].significant
