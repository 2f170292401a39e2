"""A cluster that is only a snapshot stream: a runtime file and a signed ZMQ PUB socket.

The Jupyter server follows it as it follows a real cluster's collector (it reads
the runtime file, checks each snapshot's signature, seq and cluster, and passes
it on through ``/lepton/api/metrics``), so the browser gets exactly what the
test publishes: 64 ranks on 8 hosts, or malformed snapshots, through the real
WebSocket. Nothing here imitates a rank: only the collector's side of the wire.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

import zmq

from lepton_nb.metrics import runtime, wire

KINDS = ("rank_died", "rank_restarted", "push_started", "push_ended", "cell_started", "cell_ended")
CLASSES = ("nvlink", "pcie", "shm", "sys", "network")


class Stream:
    """One synthetic cluster in ``folder`` (the server's Jupyter runtime directory)."""

    def __init__(self, folder: str, cluster: str | None = None) -> None:
        self.cluster = cluster or f"synthetic-{uuid.uuid4().hex[:8]}"
        self.key = os.urandom(32)
        self.seq = 0
        self._pub = zmq.Context.instance().socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        port = self._pub.bind_to_random_port("tcp://127.0.0.1")
        info = {
            "cluster": self.cluster,
            "endpoint": f"tcp://127.0.0.1:{port}",
            "key": self.key.hex(),
            "pid": os.getpid(),
            "kernel": None,
            "started": time.time(),
        }
        self.path = runtime.write(info, folder)

    def publish(self, message: dict[str, Any]) -> None:
        """Sign and send ``message`` as this cluster's next snapshot (its type, cluster and seq
        are set: the server checks those; everything else goes through as given)."""
        self.seq += 1
        self._pub.send_multipart(
            wire.sign(self.key, dict(message, type="snapshot", cluster=self.cluster, seq=self.seq))
        )

    def close(self) -> None:
        """Remove the runtime file (the server drops the cluster) and close the socket."""
        runtime.remove(self.path)
        self._pub.close(0)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def snapshot(
    ranks: int = 64, hosts: int = 8, t: float | None = None, step: int = 0, interval: float = 0.5,
    age: float = 0.2, events: int = 20, gpus: bool = True,
) -> dict[str, Any]:
    """A well-formed snapshot of ``ranks`` ranks spread over ``hosts`` hosts, at step ``step``
    (the figures move with it), with a ring of links and the notebook pushing to rank 0."""
    t = time.time() if t is None else t
    rng = random.Random(step)
    per_host = max(1, ranks // hosts)
    rows, links = [], []
    for r in range(ranks):
        host = f"node{r // per_host}"
        used = 2e9 + 1e7 * ((step + r) % 100)
        util = float((step * 7 + r * 13) % 100)
        nxt = (r + 1) % ranks
        cls = "network" if nxt // per_host != r // per_host else ("nvlink" if gpus else "shm")
        rate = 1e6 * (1 + rng.random() * 100)
        links.append({"src": r, "dst": nxt, "bytes": int(1e9 + step * rate), "rate": rate, "class": cls})
        rows.append({
            "rank": r, "engine_id": r, "host": host, "pid": 1000 + r,
            "device": "cuda:0" if gpus else "cpu", "gpu": r % per_host if gpus else None,
            "state": "busy" if (step + r) % 3 else "idle", "age": age,
            "memory": {"kind": "gpu" if gpus else "host", "used": used, "total": 8e10},
            "series": {"memory": used, "utilization": util, "sent": rate},
            "utilization_kind": "gpu" if gpus else "cpu",
        })  # fmt: skip
    links.append({"src": -1, "dst": 0, "bytes": int(4e9), "rate": 2e9, "class": "network"})
    base = t - events
    return {
        "time": t, "interval": interval, "world_size": ranks, "backend": "nccl" if gpus else "gloo",
        "running": True, "notebook": {"host": "hub"}, "ranks": rows, "links": links,
        "events": [
            {"id": i + 1, "time": base + i, "kind": KINDS[i % len(KINDS)], "rank": i % ranks,
             "text": f"event {i + 1}"}
            for i in range(events)
        ],
    }  # fmt: skip
