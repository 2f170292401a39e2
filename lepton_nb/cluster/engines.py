"""The cluster's engines: launched through the launcher, awaited until they register, stopped.

Every new engine is asked for its :class:`~lepton_nb.engine.identity.EngineReport`
as soon as it registers. An engine whose versions differ from the notebook's
is stopped and refused. While engines are awaited, the launcher is asked
whether something went wrong (a job that ended, an engine that exited, a
host that cannot reach the controller), so a failure is reported when it
happens, not at the end of the wait.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..engine import identity
from ..errors import ClusterError
from .job import Job
from .launchers import Launch, Launcher
from .placement import Registered, notebook_versions, version_problem
from .ranks import RankRecord, RankTable

if TYPE_CHECKING:  # pragma: no cover
    import ipyparallel as ipp

    from .controller import Controller

log = logging.getLogger(__name__)

NOT_REGISTERED = "{missing} of {count} engine(s) did not register within {timeout:g} s: {why}"
REFUSED = "an engine was refused: {why}"
#: Seconds between two looks at the controller while waiting for engines.
POLL_S = 0.05


class Engines:
    """Launch, await and stop the engines of one cluster."""

    def __init__(
        self,
        controller: Controller,
        client: ipp.Client,
        launcher: Launcher,
        timeout: float,
        progress: bool,
        env: dict[str, str] | None = None,
    ) -> None:
        self.controller = controller
        self.client = client
        self.launcher = launcher
        self.timeout = timeout
        self.progress = progress
        self.env = dict(env or {})
        self.launches: dict[str, Launch] = {}
        self.history: list[Launch] = []  # every launch, stopped ones too
        self.members: dict[str, set[int]] = {}  # engine set -> its live engine ids
        self._known: set[int] = set(client.ids)
        self._seq = 0
        self._versions = notebook_versions()

    # -- starting ---------------------------------------------------------------
    def start(self, n: int) -> list[Registered]:
        """Launch engines for ``n`` ranks and wait until every one has registered and reported."""
        self._seq += 1
        return self._await(self.launcher.launch(self.controller, n, self.env, self._seq))

    def start_on(self, where: dict[str, int]) -> list[Registered]:
        """Launch ``count`` engines on each ``target`` of ``where`` (a host, an ssh host, a node)."""
        self._seq += 1
        launches: list[Launch] = []
        for target, count in where.items():
            launches += self.launcher.launch_on(self.controller, target, count, self.env, self._seq)
        return self._await(launches)

    def target(self, record: RankRecord) -> str:
        """Where the launcher should start a replacement for ``record``'s engine."""
        launch = self.launches.get(record.engine_set)
        return launch.target if launch is not None and launch.target else record.host

    def _await(self, launches: list[Launch]) -> list[Registered]:
        for launch in launches:
            self.launches[launch.set_id] = launch
            self.history.append(launch)
            self.members.setdefault(launch.set_id, set())
        wanted = {launch.set_id: launch.count for launch in launches}
        arrived: list[Registered] = []
        deadline = time.monotonic() + self.timeout
        total = sum(wanted.values())
        bar = tqdm(total=total, desc="engines registered", unit="rank", leave=False,
                   disable=not self.progress)  # fmt: skip
        try:
            while True:
                for reg in self._new_reports(deadline):
                    if wanted.get(reg.engine_set, 0) > 0:
                        wanted[reg.engine_set] -= 1
                        arrived.append(reg)
                        bar.update(1)
                if not any(wanted.values()):
                    return arrived
                self._check(launches, wanted, arrived, deadline, bar)
                time.sleep(POLL_S)
        finally:
            bar.close()
            self.controller.secure_runtime_files()

    def _new_reports(self, deadline: float) -> list[Registered]:
        """Reports of engines that registered since the last look; refused ones are stopped."""
        new = [e for e in self.client.ids if e not in self._known]
        if not new:
            return []
        self._known.update(new)
        job = Job(self.client).apply({e: e for e in new}, identity.report)
        job.wait(max(1.0, deadline - time.monotonic()))
        out, refused = [], []
        for eid, report in job.outcome().results.items():
            set_id = report.engine_set or ""
            launch = self.launches.get(set_id)
            why = version_problem(report, self._versions)
            if why is not None:
                refused.append((eid, why))
                continue
            if launch is None:
                log.warning("engine %s from an unknown engine set %r; stopping it", eid, set_id)
                self._signal([eid], report)
                continue
            self.members[set_id].add(eid)
            out.append(Registered(eid, set_id, report, launch.seq))
        for eid, failure in job.outcome().failures.items():
            log.warning("engine %s did not report: %s", eid, failure.summary())
        if refused:
            for eid, _ in refused:
                self._signal([eid], None)
            raise ClusterError(REFUSED.format(why=refused[0][1]))
        return out

    def _check(
        self,
        launches: list[Launch],
        wanted: dict[str, int],
        arrived: list[Registered],
        deadline: float,
        bar: Any,
    ) -> None:
        for launch in launches:
            if not wanted[launch.set_id]:
                continue
            hosts = Counter(r.report.host for r in arrived if r.engine_set == launch.set_id)
            why = self.launcher.problem(self.controller, launch, dict(hosts))
            if why is None and time.monotonic() < deadline:
                if self.progress:
                    status = self.launcher.status(self.controller, launch)
                    if status:
                        bar.set_postfix_str(status, refresh=False)
                continue
            if why is None:
                why = self.launcher.timed_out(self.controller, launch, dict(hosts))
            missing = sum(wanted.values())
            raise ClusterError(NOT_REGISTERED.format(
                missing=missing, count=sum(lc.count for lc in launches), timeout=self.timeout,
                why=why,
            ))  # fmt: skip

    # -- stopping ---------------------------------------------------------------
    def kill(self, records: list[RankRecord], table: RankTable) -> None:
        """Stop the engines of ``records`` for good; an engine set left empty is stopped too.

        An engine on the notebook's host gets SIGKILL directly, one elsewhere through its nanny.
        """
        for rec in records:
            if table.is_local(rec):
                try:
                    os.kill(rec.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                self._signal([rec.engine_id], rec.report)
            members = self.members.get(rec.engine_set, set())
            members.discard(rec.engine_id)
            launch = self.launches.get(rec.engine_set)
            if launch is not None and not members:
                self.launcher.stop(self.controller, launch)
                self.launches.pop(rec.engine_set, None)

    def _signal(self, engine_ids: list[int], report: Any) -> None:
        """SIGKILL engines through their nanny (the only way to reach one on another host)."""
        try:
            self.client.send_signal(signal.SIGKILL, targets=engine_ids, block=False)
        except Exception as e:  # it is gone already
            log.debug("signalling engines %s: %s", engine_ids, e)
