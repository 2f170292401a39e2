import statistics
import time

import pytest
import zmq

from lepton_nb import links
from lepton_nb.metrics import sampler, wire

#: times the sampler
pytestmark = pytest.mark.alone

KEY = b"s" * 32


@pytest.fixture
def pull():
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sampler.stop()
    sock.close(0)


def _next(sock, timeout=5.0):
    assert sock.poll(timeout * 1000), f"no sample within {timeout} s"
    return wire.verify(KEY, sock.recv_multipart())


def test_samples_arrive_signed_at_the_interval(pull):
    sock, endpoint = pull
    info = sampler.start(endpoint, KEY.hex(), "c1", rank=3, gpu=None, interval=0.1)
    assert info["rank"] == 3
    first = _next(sock)
    t0 = time.monotonic()
    for _ in range(5):
        last = _next(sock)
    assert time.monotonic() - t0 < 2.0  # about 10 a second
    for s in (first, last):
        assert s["type"] == "sample" and s["cluster"] == "c1" and s["rank"] == 3
        assert s["rss"] > 0 and s["nvml"] is None and s["torch"] is None
        assert s["busy"] is False  # no kernel in this process
    assert last["time"] > first["time"]


def test_link_bytes_and_rates(pull):
    sock, endpoint = pull
    sampler.start(endpoint, KEY.hex(), "c1", rank=0, interval=0.1)
    _next(sock)
    links.count(0, 1, 1_000_000)
    rates = []
    for _ in range(5):
        rows = {(s, d): (n, r) for s, d, n, r in _next(sock)["links"]}
        if (0, 1) in rows:
            rates.append(rows[(0, 1)][1])
    assert rates and max(rates) > 1_000_000  # a megabyte within a tenth of a second
    assert rates[-1] == 0.0  # nothing moved since


def test_a_new_start_replaces_the_old_sampler(pull):
    sock, endpoint = pull
    sampler.start(endpoint, KEY.hex(), "c1", rank=0, interval=0.1)
    old = sampler.running()
    sampler.start(endpoint, KEY.hex(), "c1", rank=1, interval=0.1)
    assert not old.is_alive() and sampler.running() is not old
    sampler.stop()
    assert sampler.running() is None


def test_sending_never_blocks_without_a_receiver():
    sampler.start("tcp://127.0.0.1:9", KEY.hex(), "c1", rank=0, interval=0.01)
    time.sleep(0.3)
    s = sampler.running()
    assert s.sent + s.dropped >= 5  # kept sampling, dropped what could not go
    t0 = time.monotonic()
    sampler.stop()
    assert time.monotonic() - t0 < 1.0


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="the sampling interval must be positive"):
        sampler.start("tcp://127.0.0.1:9", KEY.hex(), "c1", rank=0, interval=0)


def test_a_sample_costs_little():
    s = sampler.Sampler("tcp://127.0.0.1:9", KEY, "c1", 0, None, 1.0, sampler.Activity())
    s.read()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        s.read()
        times.append(time.perf_counter() - t0)
    # at 2 samples a second, a few milliseconds each is well under 1% of a core
    assert statistics.median(times) < 0.01


def test_the_request_that_starts_the_sampler_is_not_busy():
    activity = sampler.Activity()
    activity.begin()  # the engine runs the request that (re)starts the sampler
    s = sampler.Sampler("tcp://127.0.0.1:9", KEY, "c1", 0, None, 1.0, activity)
    assert s.read()["busy"] is False
    activity.end()
    assert s.read()["busy"] is False
    activity.begin()  # the user's next cell
    assert s.read()["busy"] is True
    activity.end()
    assert s.read()["busy"] is False



def test_a_rank_waiting_in_a_collective_says_which_in_its_samples(cluster):
    """Rank 0 waits in a real gloo all_reduce for rank 1, which comes 3 s later: its
    samples meanwhile name all_reduce, and rank 1's (asleep) name nothing."""
    import threading
    import time

    code = (
        "import time, torch, torch.distributed as dist\n"
        "if rank == 1:\n"
        "    time.sleep(3)\n"
        "dist.all_reduce(torch.ones(1))\n"
    )
    seen: list[dict[int, str]] = []
    stop = threading.Event()
    start = time.monotonic()

    def watch():
        while not stop.wait(0.1):
            seen.append(cluster.collector.in_collective(since=start))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cluster.execute(code, timeout=60)
    finally:
        stop.set()
        watcher.join(5)
    assert {0: "all_reduce"} in seen, seen
