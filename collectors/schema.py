"""The prediction record: field names, Arrow schema and validation (names kept for callers).

Everything here is :mod:`collectors.codec`, the one codec of the record contract; this module
keeps the names older code and tests import. :func:`columnar_table` is the codec's columnar
conversion without the value check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from collectors.codec import (
    ARROW_SCHEMA,
    MAX_ERRORS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    OPTIONAL_FIELDS,
    RECORD_FIELDS,
    REQUIRED_FIELDS,
    _fast_table,
    records_to_table,
    validate_table,
)

__all__ = [
    "ARROW_SCHEMA",
    "MAX_ERRORS",
    "MAX_NAME_CHARS",
    "MAX_TEXT_CHARS",
    "OPTIONAL_FIELDS",
    "RECORD_FIELDS",
    "REQUIRED_FIELDS",
    "columnar_table",
    "records_to_table",
    "validate_table",
]


def columnar_table(records: Sequence[Mapping[str, Any]]) -> pa.Table | None:
    """Records built column-wise by Arrow (numpy vectors stacked), or ``None`` when a record has
    an unknown or missing required key or a value of the wrong type.

    Value checks (ranges, NaN, dimensions) are :func:`validate_table`'s; prefer
    :func:`records_to_table`, which does both and names the failing row and field.
    """
    return _fast_table(records)
