"""Unit tier: serialization and exception classes, without a runtime."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from volley import exceptions
from volley._serialization import dumps, loads


class _Stream:
    """What the native module hands back for Arrow payloads: an Arrow C stream."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self.table.__arrow_c_stream__(requested_schema)


def roundtrip(value):
    payload, nested = dumps(value)
    assert nested == []
    return loads(payload if isinstance(payload, bytes) else _Stream(payload))


def test_plain_values_are_pickled_inline():
    payload, _ = dumps({"a": [1, 2.5, "x"], "b": None})
    assert isinstance(payload, bytes)
    assert roundtrip({"a": [1, 2.5, "x"], "b": None}) == {"a": [1, 2.5, "x"], "b": None}


def test_lambdas_and_local_classes_pickle():
    class Local:
        def __init__(self, v):
            self.v = v

    f = lambda x: x + 1  # noqa: E731
    g, obj = roundtrip((f, Local(3)))
    assert g(1) == 2 and obj.v == 3


def test_large_numpy_arrays_travel_as_out_of_band_buffers():
    arr = np.arange(1 << 20, dtype=np.float64)
    payload, _ = dumps(arr)
    assert isinstance(payload, pa.Table)
    assert payload.schema.metadata[b"volley.kind"] == b"pickle5"
    # The buffer is copied at put (later writes to the array must not show) ...
    arr[0] = -1.0
    back = loads(_Stream(payload))
    assert back[0] == 0.0 and back[1:].tolist() == list(range(1, 1 << 20))
    # ... and read in place on the way back.
    assert not back.flags.owndata
    data = payload.column("buffer0").chunk(0).buffers()[2]
    assert back.ctypes.data == data.address, "the array was copied on the way back"


def test_arrow_tables_and_batches_keep_their_type():
    t = pa.table({"x": [1, 2, 3], "s": ["a", "b", None]})
    assert roundtrip(t).equals(t)
    b = t.to_batches()[0]
    back = roundtrip(b)
    assert isinstance(back, pa.RecordBatch) and back.equals(b)


def test_task_error_is_an_instance_of_the_users_class():
    import pickle

    err = exceptions._task_failure(
        "f (t1)", "error", "Traceback: ...\nValueError: bad", pickle.dumps(ValueError("bad"))
    )
    assert isinstance(err, ValueError)
    assert isinstance(err, exceptions.TaskError)
    assert isinstance(err, exceptions.RayTaskError)
    assert err.args == ("bad",)
    assert "ValueError: bad" in str(err)
    with pytest.raises(ValueError):
        raise err


def test_worker_death_is_a_worker_crashed_error():
    err = exceptions._task_failure("f (t1)", "worker_died", "the worker process died", None)
    assert isinstance(err, exceptions.WorkerCrashedError)


def test_small_out_of_band_values_are_framed_inline_and_read_back_whole():
    from volley._serialization import INLINE_MAX

    small = [np.arange(10), np.zeros((3, 4), dtype="f4"), pa.array([1, None, 3])]
    payload, _ = dumps(small)
    assert isinstance(payload, bytes), "small buffers stay inline"
    back = loads(payload)
    assert [a.tolist() for a in back[:2]] == [a.tolist() for a in small[:2]]
    assert back[0].dtype == small[0].dtype and back[1].shape == (3, 4)
    assert back[2].equals(small[2])
    back[0][0] = 7  # writable, as an in-band pickle gives it
    # At the threshold the buffers are inline; one byte more and they go to Arrow.
    at, over = np.zeros(INLINE_MAX, np.uint8), np.zeros(INLINE_MAX + 1, np.uint8)
    assert isinstance(dumps(at)[0], bytes)
    assert isinstance(dumps(over)[0], pa.Table)
    assert loads(dumps(at)[0]).nbytes == INLINE_MAX
