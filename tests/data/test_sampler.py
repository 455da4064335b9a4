import pytest

from desed_task.data.sampler import MultiSetBatchSampler

SIZES = [100, 80, 240]
OFFSETS = [0, 100, 180]


def _set_of(index):
    return sum(index >= o for o in OFFSETS) - 1


def test_batch_composition_and_length():
    sampler = MultiSetBatchSampler(SIZES, [12, 12, 24], seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == min(100 // 12, 80 // 12, 240 // 24) == 6
    for batch in batches:
        assert [_set_of(i) for i in batch] == [0] * 12 + [1] * 12 + [2] * 24
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))


@pytest.mark.parametrize("replicas", [2, 4])
def test_ranks_get_disjoint_shares(replicas):
    samplers = [MultiSetBatchSampler(SIZES, [3, 3, 6], seed=5, num_replicas=replicas, rank=r) for r in range(replicas)]
    for sampler in samplers:
        sampler.set_epoch(3)
    per_rank = [set(i for b in s for i in b) for s in samplers]
    assert len({len(s) for s in samplers}) == 1
    assert len(samplers[0]) == min(n // replicas // b for n, b in zip(SIZES, [3, 3, 6]))
    for a in range(replicas):
        for b in range(a + 1, replicas):
            assert not per_rank[a] & per_rank[b]


def test_epochs_are_deterministic_and_different():
    first, second = MultiSetBatchSampler(SIZES, [12, 12, 24], seed=7), MultiSetBatchSampler(SIZES, [12, 12, 24], seed=7)
    first.set_epoch(2)
    second.set_epoch(2)
    assert list(first) == list(second)
    second.set_epoch(3)
    assert list(first) != list(second)


def test_no_shuffle_and_keep_last():
    sampler = MultiSetBatchSampler([5, 10], [2, 2], shuffle=False, drop_last=False)
    batches = list(sampler)
    assert len(batches) == 3 and batches[0] == [0, 1, 5, 6] and batches[-1] == [4, 9, 10]
    with pytest.raises(ValueError, match="batch sizes"):
        MultiSetBatchSampler([5, 10], [2])
