"""Bad task arguments are refused before anything is sent, each with a clear error."""

import threading

import pytest

import lepton_nb


def _double(x):
    return 2 * x


def test_a_function_that_is_not_callable_or_not_picklable_is_named(cluster):
    with pytest.raises(TypeError, match="must be callable, not int"):
        cluster.submit(3)
    lock = threading.Lock()

    def holds_a_lock():
        return lock

    with pytest.raises(TypeError, match="holds_a_lock cannot be sent to a rank"):
        cluster.submit(holds_a_lock)
    with pytest.raises(TypeError, match="holds_a_lock cannot be sent"):
        cluster.map(holds_a_lock, [1])


@pytest.mark.parametrize("memory", ["2XB", "lots", -5, "-1GB"])
def test_memory_that_does_not_parse(cluster, memory):
    with pytest.raises(ValueError, match=r"memory: .*e.g. '2GB', '512MiB'"):
        cluster.submit(_double, 1, memory=memory)


def test_negative_retries_and_bad_after(cluster, make_cluster):
    with pytest.raises(ValueError, match="retries must be an int of 0 or more, got -1"):
        cluster.submit(_double, 1, retries=-1)
    with pytest.raises(TypeError, match="after= takes futures of this cluster, not str"):
        cluster.submit(_double, 1, after=["f-1"])
    other = make_cluster(n=1)
    theirs = other.submit(_double, 1)
    with pytest.raises(ValueError, match="belongs to another cluster"):
        cluster.submit(_double, 1, after=[theirs])
    assert theirs.result(60) == 2


def test_memory_sizes_accepted(cluster):
    fs = [cluster.submit(_double, i, memory=m) for i, m in enumerate([1, "512MiB", "1KB"])]
    assert lepton_nb.tasks.api.gather(fs, 60) == [0, 2, 4]


@pytest.mark.parametrize("chunksize", [0, -3, 2.5, True, "8"])
def test_a_chunksize_that_is_not_a_positive_int(cluster, chunksize):
    with pytest.raises(ValueError, match=rf"chunksize must be a positive int, got {chunksize!r}"):
        cluster.map(_double, [1, 2], chunksize=chunksize)
