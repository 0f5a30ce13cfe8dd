"""Unit tier (no runtime): conversions of Data batches."""

from __future__ import annotations

import pyarrow as pa
from volley.data.dataset import _from_format, _to_format


def test_pandas_batches_keep_strings_in_arrow():
    table = pa.table(
        {"id": [1, 2, 3], "s": ["a", None, "ccc"], "l": pa.array(["x"] * 3, pa.large_string())}
    )
    df = _to_format(table, "pandas")
    # No Python object per string: pandas' pyarrow-backed string dtype, on pandas 2 and 3.
    assert df["s"].dtype.storage == "pyarrow" and df["l"].dtype.storage == "pyarrow"
    assert df["s"].tolist()[0] == "a" and df["s"].isna().tolist() == [False, True, False]
    assert df["s"].str.len().tolist()[2] == 3
    back = _from_format(df)
    assert back.column("s").to_pylist() == ["a", None, "ccc"]
    assert back.column("id").to_pylist() == [1, 2, 3]
