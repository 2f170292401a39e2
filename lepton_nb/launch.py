"""The engines behind the ranks: one ipyparallel engine set per rank.

Each rank's engine starts with its own environment (``LEPTON_RANK``,
``CUDA_VISIBLE_DEVICES``, ...), registers with the controller, and reports who
it is; a rank can be stopped and started again alone.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from typing import Any

import ipyparallel as ipp
from tqdm.auto import tqdm

from . import engine
from .errors import ClusterError
from .placement import Slot


class EngineSets:
    """Start, find and stop the engine of each rank; own the cluster's runtime files."""

    def __init__(
        self,
        ipp_cluster: ipp.Cluster,
        client: ipp.Client,
        engines: dict[int, dict[str, Any]],
        engine_timeout: float,
        progress: bool,
    ) -> None:
        self._ipp = ipp_cluster
        self._client = client
        self._engines = engines  # shared with the Cluster: rank -> engine_id, set, host, addr, pid
        self.engine_timeout = engine_timeout
        self.progress = progress

    def launch(self, slots: list[Slot]) -> None:
        """Start one engine set per slot and wait until each has registered."""
        assert self._ipp is not None and self._client is not None
        known = set(self._client.ids)
        for s in slots:
            set_id = f"rank{s.rank}-{uuid.uuid4().hex[:6]}"
            self._ipp.start_engines_sync(1, engine_set_id=set_id, environment=dict(s.env))
            self._engines[s.rank] = {"set": set_id, "engine_id": None}
        wanted = {s.rank for s in slots}
        deadline = time.monotonic() + self.engine_timeout
        bar = tqdm(
            total=len(slots),
            desc="engines registered",
            unit="rank",
            leave=False,
            disable=not self.progress,
        )
        try:
            self._await_registration(known, wanted, deadline, bar)
        finally:
            bar.close()
        self.secure_runtime_files()

    def _await_registration(
        self, known: set[int], wanted: set[int], deadline: float, bar: Any
    ) -> None:
        assert self._client is not None
        while True:
            new = [e for e in self._client.ids if e not in known]
            if new:
                found = self._client.direct_view(new).apply_async(engine.identify)
                ids = found.get(timeout=max(1.0, deadline - time.monotonic()))
                for eid, info in zip(new, ids):
                    known.add(eid)
                    if info["rank"] in wanted:
                        self._engines[info["rank"]].update(info, engine_id=eid)
                        wanted.discard(info["rank"])
                        bar.update(1)
            if not wanted:
                return
            if time.monotonic() > deadline:
                raise ClusterError(self._startup_failure(sorted(wanted)))
            time.sleep(0.05)

    def _startup_failure(self, ranks: list[int]) -> str:
        logs = []
        for r in ranks:
            es = self._ipp.engines.get(self._engines[r]["set"]) if self._ipp else None
            if es is not None:
                try:
                    out = es.get_output()
                except Exception:
                    out = ""
                tail = "\n".join(str(out).strip().splitlines()[-5:])
                if tail:
                    logs.append(f"  rank {r} engine log:\n    " + tail.replace("\n", "\n    "))
        msg = f"engines for rank(s) {ranks} did not register within {self.engine_timeout:g} s"
        return msg + ("\n" + "\n".join(logs) if logs else "")

    def kill(self, ranks: list[int]) -> None:
        """Stop the engines of ``ranks`` for good (SIGKILL where they run on this host)."""
        here = socket.gethostname()
        for r in ranks:
            info = self._engines.pop(r, None)
            if not info:
                continue
            if info.get("host") == here and info.get("pid"):
                try:
                    os.kill(info["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self._ipp is not None and info["set"] in self._ipp.engines:
                try:
                    self._ipp.stop_engines_sync(info["set"])
                except Exception as e:
                    logging.getLogger(__name__).debug("stopping rank %s: %s", r, e)

    def runtime_files(self) -> list[str]:
        """This cluster's files in the ipyparallel profile (connection info, logs)."""
        if self._ipp is None:
            return []
        cid = self._ipp.cluster_id
        found = []
        for sub in ("security", "log"):
            folder = os.path.join(self._ipp.profile_dir, sub)
            if os.path.isdir(folder):
                found += [os.path.join(folder, f) for f in os.listdir(folder) if cid in f]
        return found

    def secure_runtime_files(self) -> None:
        """Make this cluster's runtime files readable by their owner only (0600)."""
        for path in self.runtime_files():
            try:
                os.chmod(path, 0o600)
            except OSError:
                pass

    def remove_runtime_files(self) -> None:
        for path in self.runtime_files():
            try:
                os.remove(path)
            except OSError:
                pass
