"""The record codec: the timestamp rule, the limits, and property tests over records."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import codec
from collectors.codec import (
    ARROW_SCHEMA,
    MAX_NAME_CHARS,
    InvalidValue,
    labels_to_table,
    parse_json,
    parse_ts,
    record_errors,
    records_to_table,
    validate_record,
    validate_table,
)
from monitor.errors import SchemaError

T = datetime(2025, 12, 1, tzinfo=UTC)
EPOCH_S = 1_764_547_200  # 2025-12-01T00:00:00Z


# -- the timestamp rule ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    EPOCH_S, float(EPOCH_S), EPOCH_S * 1_000, EPOCH_S * 1_000_000, EPOCH_S * 1_000_000_000,
    np.int64(EPOCH_S * 1_000_000_000), "2025-12-01T00:00:00Z", "2025-12-01T01:00:00+01:00",
    "2025-12-01T00:00:00.000000+00:00", T, T.astimezone(timezone(timedelta(hours=-5))),
])
def test_every_encoding_of_one_instant_reads_the_same(value: Any) -> None:
    assert parse_ts(value) == T


@pytest.mark.parametrize("value", [
    "2025-12-01T00:00:00",  # no offset
    datetime(2025, 12, 1),  # naive datetime
    "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "2101-01-01T00:00:00Z",
    -1, 2**63, pytest.param(10**5000, id="5000-digits"), 1e300, math.nan, math.inf, True,
    "yesterday", "", [EPOCH_S], None,
    "2" * 100,
])
def test_timestamps_outside_the_rule_are_refused(value: Any) -> None:
    with pytest.raises(InvalidValue):
        parse_ts(value)


def test_epoch_unit_boundaries() -> None:
    s_bound, ms_bound, us_bound = codec.EPOCH_UNIT_BOUNDS
    with pytest.raises(InvalidValue):
        parse_ts(int(s_bound) - 1)
    assert parse_ts(int(s_bound)) == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)  # read as ms
    assert parse_ts(int(ms_bound)) == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)  # read as µs
    assert parse_ts(int(us_bound)) == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)  # read as ns


@pytest.mark.parametrize("column", [
    pa.array([EPOCH_S * 10**9], pa.int64()),
    pa.array([EPOCH_S * 10**6], pa.int64()),
    pa.array([EPOCH_S * 1000], pa.int64()),
    pa.array([EPOCH_S], pa.int32()),
    pa.array([float(EPOCH_S)]),
    pa.array([EPOCH_S * 10**9], pa.timestamp("ns")),
    pa.array([EPOCH_S], pa.timestamp("s", tz="UTC")),
    pa.array([EPOCH_S * 1000], pa.timestamp("ms", tz="Asia/Tokyo")),
    pa.array(["2025-12-01T09:00:00+09:00"]),
])
def test_arrow_ts_columns_honour_unit_zone_and_the_epoch_rule(column: pa.Array) -> None:
    table = _table(ts=column)
    out, _ = validate_table(table)
    assert out["ts"].to_pylist() == [T]


@pytest.mark.parametrize("column", [
    pa.array([EPOCH_S * 10**9, 5 * 10**18], pa.int64()),  # 2128 in ns
    pa.array([EPOCH_S, -5], pa.int64()),
    pa.array(["2025-12-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]),
    pa.array([EPOCH_S, 3 * 10**11], pa.timestamp("s")),
    pa.array([float(EPOCH_S), math.inf]),
])
def test_arrow_ts_columns_out_of_range_name_the_row(column: pa.Array) -> None:
    table = pa.table({"event_id": ["a", "b"], "ts": column, "model_name": ["m"] * 2,
                      "model_version": ["v"] * 2, "predicted_label": ["p"] * 2, "confidence": [0.5] * 2})
    with pytest.raises(SchemaError) as info:
        validate_table(table, first_row=10)
    assert [(e.row, e.field) for e in info.value.errors] == [(11, "ts")]
    assert validate_table(table, skip_bad=True)[0]["ts"].to_pylist() == [T]


# -- JSON ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    '{"n": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000, '{"a": "\\ud800"}', "{", b"\xff\xfe",
])
def test_parse_json_refuses_with_a_typed_error(text: str | bytes) -> None:
    with pytest.raises(SchemaError) as info:
        parse_json(text, row=7)
    assert info.value.errors[0].row == 7 and info.value.errors[0].field == "<json>"


def test_huge_int_that_parses_is_refused_naming_the_field() -> None:
    rec = _record(n_tokens=10**40)
    assert [(e.field) for e in record_errors(parse_json(__import__("json").dumps(rec)))] == ["n_tokens"]


# -- limits ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value"), [
    ("event_id", "a\x00b"), ("model_name", "m" * 1_000_000), ("model_name", "m" * (MAX_NAME_CHARS + 1)),
    ("predicted_label", "pos\n"), ("label", "x\x7f"), ("source", "s" * 201), ("model_version", "  "),
    ("event_id", "\ud800"), ("text", "t" * (codec.MAX_TEXT_CHARS + 1)), ("confidence", 10**400),
    ("confidence", math.nan), ("latency_ms", -1.0), ("n_tokens", 2**31), ("n_chars", -1),
    ("probs", [0.5, 1.5]), ("embedding", [1.0, math.inf, 0.0, 0.0]), ("truncated", 1),
    ("text_sha256", "ABC"), ("ts", "2025-12-01T00:00:00"),
])
def test_each_limit_is_refused_naming_the_field(field: str, value: Any) -> None:
    err = validate_record(_record(**{field: value}), row=4)
    assert err is not None and err.row == 4 and err.field == field, err


def test_text_may_hold_newlines_and_names_at_the_limit_pass() -> None:
    assert validate_record(_record(text="line one\nline two\t", model_name="m" * MAX_NAME_CHARS)) is None


def test_labels_follow_the_same_rules_and_refuse_repeated_ids() -> None:
    table = labels_to_table([{"event_id": "a", "label": "pos", "labeled_at": EPOCH_S * 10**9},
                             {"event_id": "b", "label": "neg"}], now=T)
    assert table["labeled_at"].to_pylist() == [T, T]
    for items, row, field in [
        ([{"event_id": "a", "label": "pos", "labeled_at": "2025-12-01T00:00:00"}], 0, "labeled_at"),
        ([{"event_id": "a", "label": "pos"}, {"event_id": "a", "label": "neg"}], 1, "event_id"),
        ([{"event_id": "a\x00", "label": "pos"}], 0, "event_id"),
        ([{"event_id": "a", "label": "p" * 201}], 0, "label"),
    ]:
        with pytest.raises(SchemaError) as info:
            labels_to_table(items)
        assert (info.value.errors[0].row, info.value.errors[0].field) == (row, field)


# -- property tests --------------------------------------------------------------------------------
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=MAX_NAME_CHARS
                ).filter(lambda s: s.strip() != "")
UNIT = st.floats(0.0, 1.0, allow_nan=False, width=32)
TS = st.datetimes(datetime(1970, 1, 1), datetime(2100, 12, 31), timezones=st.just(UTC))


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    ts = draw(TS)
    rec: dict[str, Any] = {
        "event_id": draw(NAMES), "model_name": draw(NAMES), "model_version": draw(NAMES),
        "predicted_label": draw(NAMES), "confidence": draw(st.floats(0.0, 1.0)),
        "ts": draw(st.sampled_from([ts.isoformat(), ts.isoformat().replace("+00:00", "Z"),
                                    int(ts.timestamp()), ts])),
    }
    if draw(st.booleans()):
        rec["probs"] = draw(st.lists(UNIT, min_size=1, max_size=4))
    if draw(st.booleans()):
        rec["embedding"] = [1.0, draw(st.floats(-1e6, 1e6, width=32)), 0.5]
    if draw(st.booleans()):
        tokens = draw(st.integers(0, 2**31 - 1))
        rec.update(n_tokens=tokens, n_unk=draw(st.integers(0, tokens)))
    for name in ("source", "label"):
        if draw(st.booleans()):
            rec[name] = draw(NAMES)
    if draw(st.booleans()):
        rec["text"] = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=50))
    if draw(st.booleans()):
        rec["truncated"] = draw(st.booleans())
    if draw(st.booleans()):
        rec["latency_ms"] = draw(st.floats(0.0, 1e9))
    return rec


BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from(["", "a\x00", "x" * 201, 5, None, "\ud800", True]),
    "ts": st.sampled_from(["2020-01-01T00:00:00", "0001-01-01T00:00:00+01:00", -1, 2**64, None,
                           "not a time", 1e300, [1]]),
    "model_name": st.sampled_from(["m" * 1_000_000, "\t", "a\nb", 1.5, None]),
    "confidence": st.sampled_from([1.0001, -0.1, math.nan, math.inf, "0.5", True, None, 10**400]),
    "probs": st.sampled_from([[], [1.5], [math.nan], [True], ["a"], 0.5, [[0.5]]]),
    "n_tokens": st.sampled_from([-1, 2**31, 1.0, "3", False, 10**30]),
    "embedding": st.sampled_from([[], [math.nan], [None], "x", [1.0, "2"]]),
    "text_sha256": st.sampled_from(["abc", "G" * 64, 7]),
    "truncated": st.sampled_from([0, "true", 1.0]),
}


def _scalarise(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_records(), min_size=1, max_size=6))
def test_valid_records_round_trip(records: list[dict[str, Any]]) -> None:
    for i, rec in enumerate(records):
        rec["event_id"] = f"{rec['event_id'][:150]}-{i}"
    table, errors = records_to_table(records)
    assert errors == [] and table.num_rows == len(records) and table.schema == ARROW_SCHEMA
    back = table.to_pylist()
    for rec, row in zip(records, back, strict=True):
        assert row["ts"] == parse_ts(rec["ts"])
        for name in ("event_id", "model_name", "model_version", "predicted_label", "source", "label",
                     "text", "n_tokens", "n_unk", "truncated"):
            assert row[name] == rec.get(name)
        assert row["confidence"] == pytest.approx(rec["confidence"])
        if "probs" in rec:
            assert row["probs"] == pytest.approx(rec["probs"])
    again, errors = validate_table(table)  # a codec table is a fixed point
    assert errors == [] and again.equals(table)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_records(), min_size=1, max_size=4), st.data())
def test_every_invalid_mutation_is_refused_with_its_row_and_field(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    for i, rec in enumerate(records):
        rec["event_id"] = f"id-{i}"
    row = data.draw(st.integers(0, len(records) - 1))
    field = data.draw(st.sampled_from(sorted(BAD_VALUES)))
    bad = data.draw(BAD_VALUES[field])
    records[row][field] = bad
    if field == "n_tokens":
        records[row].pop("n_unk", None)
    with pytest.raises(SchemaError) as info:
        records_to_table(records)
    assert {(e.row, e.field) for e in info.value.errors} == {(row, field)}
    kept, errors = records_to_table(records, skip_bad=True)
    assert kept.num_rows == len(records) - 1 and {e.row for e in errors} == {row}


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_records(), min_size=1, max_size=3), st.data())
def test_arbitrary_values_raise_only_the_codec_error(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    row = data.draw(st.integers(0, len(records) - 1))
    key = data.draw(st.sampled_from([*codec.RECORD_FIELDS, "extra"]))
    records[row][key] = data.draw(JSONISH)
    if data.draw(st.booleans()):
        records[row] = data.draw(JSONISH)
    try:
        records_to_table(records)
    except SchemaError as exc:
        assert exc.errors and all(isinstance(e.row, int) and e.field for e in exc.errors)
    records_to_table(records, skip_bad=True)  # never raises with skip_bad


def test_a_negative_n_tokens_is_named_alone_by_both_paths() -> None:
    """Found by hypothesis: the fast path also named n_unk ("exceeds n_tokens") for n_tokens -1."""
    recs = [_record(n_tokens=5, n_unk=0), _record(event_id="b", n_tokens=-1, n_unk=0)]
    slow = _outcome(lambda: codec._records_one_by_one(recs, range(2), skip_bad=True, source=None,
                                                       embedding_dims=None))
    assert _outcome(lambda: records_to_table(recs, skip_bad=True)) == slow
    assert slow[1] == [(1, "n_tokens")]


@settings(max_examples=80, deadline=None)
@given(st.lists(valid_records(), min_size=1, max_size=4), st.data())
def test_fast_and_record_by_record_paths_agree(records: list[dict[str, Any]], data: st.DataObject) -> None:
    for i, rec in enumerate(records):
        rec["event_id"] = f"id-{i}"
        rec["ts"] = _scalarise(rec["ts"])
    if data.draw(st.booleans()):
        field = data.draw(st.sampled_from(sorted(BAD_VALUES)))
        records[data.draw(st.integers(0, len(records) - 1))][field] = data.draw(BAD_VALUES[field])
    rows = range(len(records))
    slow = _outcome(lambda: codec._records_one_by_one(records, rows, skip_bad=True, source=None,
                                                       embedding_dims=None))
    assert _outcome(lambda: records_to_table(records, skip_bad=True)) == slow


# -- helpers ---------------------------------------------------------------------------------------
def _outcome(fn: Any) -> Any:
    table, errors = fn()
    return table.to_pylist(), sorted((e.row, e.field) for e in errors)


def _record(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_id": str(uuid.UUID(int=1)), "ts": "2025-12-01T00:00:00Z",
                           "model_name": "m", "model_version": "v1", "predicted_label": "pos",
                           "confidence": 0.7, "embedding": [0.1, 0.2, 0.3, 0.4]}
    rec.update(over)
    return rec


def _table(*, ts: pa.Array | None = None, event_id: str = "a") -> pa.Table:
    return pa.table({"event_id": [event_id], "ts": ts if ts is not None else pa.array([T]),
                     "model_name": ["m"], "model_version": ["v"], "predicted_label": ["p"],
                     "confidence": [0.5]})
