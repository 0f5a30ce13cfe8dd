"""One inline threshold: the node's ``max_inline_object_size`` (here set through
``VOLLEY_MAX_INLINE_OBJECT_SIZE``) decides in the driver and in its workers, and values on
either side of it reach every task intact."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import volley
    from volley import _serialization

    def framed(n):
        # A value whose buffers fit the threshold travels as one bytes (pickle + framed
        # buffers); a larger one as Arrow (shared memory).
        return isinstance(_serialization.dumps(np.zeros(n, np.uint8))[0], bytes)

    volley.init(num_cpus=1)
    assert _serialization.INLINE_MAX == 1000, _serialization.INLINE_MAX
    assert framed(1000) and not framed(1001)

    @volley.remote
    def seen(x):
        from volley import _serialization

        return _serialization.INLINE_MAX, framed(1000), framed(1001), x

    for n in (0, 999, 1000, 1001, 5000, 200_000):
        a = np.arange(n, dtype=np.uint8)
        limit, at, over, back = volley.get(seen.remote(a))
        assert (limit, at, over) == (1000, True, False), (limit, at, over)
        assert np.array_equal(back, a)
        assert np.array_equal(volley.get(volley.put(a)), a)
        assert np.array_equal(volley.get(seen.remote(volley.put(a)))[3], a)
    volley.shutdown()
    print("ok")
    """
)


def test_max_inline_object_size_decides_in_driver_and_workers(tmp_path):
    path = tmp_path / "driver.py"
    path.write_text(SCRIPT)
    env = {**os.environ, "VOLLEY_MAX_INLINE_OBJECT_SIZE": "1000"}
    out = subprocess.run(
        [sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
