"""Dataset iterators passed to tasks and actors (issue 19): a ``streaming_split`` shard or
``Dataset.iterator()`` pickled into a worker process is fed by the node, one batch at a
time, with the consumer's ``batch_size`` honoured — how Ray Train feeds its workers."""

import os

import pytest
import volley


@volley.remote
class Trainer:
    def consume(self, shard, batch_size):
        sizes, ids = [], []
        for batch in shard.iter_batches(batch_size=batch_size):
            sizes.append(len(batch["id"]))
            ids.extend(int(i) for i in batch["id"])
        return os.getpid(), sizes, ids


@volley.remote
def total(it):
    return sum(int(b["id"].sum()) for b in it.iter_batches(batch_size=100, batch_format="numpy"))


def test_a_streaming_split_shard_consumed_by_two_actors(rt):
    shards = volley.data.range(1000, override_num_blocks=7).streaming_split(2, equal=True)
    actors = [Trainer.remote(), Trainer.remote()]
    outs = volley.get([a.consume.remote(s, 32) for a, s in zip(actors, shards)], timeout=120)
    assert outs[0][0] != outs[1][0] and os.getpid() not in (outs[0][0], outs[1][0])
    for _, sizes, ids in outs:
        assert len(ids) == 500
        assert all(n == 32 for n in sizes[:-1]) and 0 < sizes[-1] <= 32, sizes
    assert sorted(outs[0][2] + outs[1][2]) == list(range(1000))
    for a in actors:
        volley.kill(a)


def test_an_iterator_passed_to_a_task_outlives_the_driver_s_handle(rt):
    it = volley.data.range(10_000).iterator()
    ref = total.remote(it)
    del it  # the task's copy keeps the execution alive
    assert volley.get(ref, timeout=120) == sum(range(10_000))


def test_a_lent_iterator_also_reads_in_the_driver_and_stops_when_exhausted(rt):
    it = volley.data.range(300).iterator()
    a = Trainer.remote()
    # Lent by pickling; the driver's handle and the actor read the same stream.
    ref = a.consume.remote(it, 50)
    _, sizes, ids = volley.get(ref, timeout=120)
    assert sum(sizes) == 300 and ids == list(range(300))
    assert [b for b in it.iter_batches(batch_size=10)] == []  # exhausted, for everyone
    volley.kill(a)


def test_an_iterator_stored_as_a_value_is_read_back_whole(rt):
    import pickle

    it = volley.data.range(100).iterator()
    payload = volley.put(it)  # lent; the stored value holds its anchor
    del it
    rebuilt = volley.get(payload)
    assert sum(len(b["id"]) for b in rebuilt.iter_batches(batch_size=7)) == 100
    with pytest.raises(TypeError):
        pickle.dumps(volley.data.range(3).iter_batches())  # a generator, not an iterator
