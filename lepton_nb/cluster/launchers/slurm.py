"""Engines in a Slurm job, through ipyparallel's ``SlurmEngineSetLauncher``.

A start is one job of ``nodes * ranks_per_node`` tasks (one engine each,
started by ``srun``); every engine reports ``SLURM_PROCID`` and
``SLURM_LOCALID``. Restarting a rank is a one-task job on that rank's node;
scaling up adds a job per node that gets ranks. The connection info reaches
the engines through the environment (``--export=ALL``), so no shared file is
needed for it. While engines are awaited, ``squeue`` says where each job
stands; a job still pending when the wait ends is cancelled, with Slurm's reason.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
import uuid
from typing import TYPE_CHECKING, ClassVar

from traitlets.config import Config

from ...engine.identity import route_to
from ...errors import ClusterError
from .base import REGISTRATION_TIMED_OUT, Launch, Launcher, missing_hosts

if TYPE_CHECKING:  # pragma: no cover
    from ..controller import Controller

NO_SBATCH = (
    "launcher='slurm' needs Slurm's sbatch on PATH, and it is not there. Load Slurm "
    "(e.g. `module load slurm`) before starting Jupyter, or use launcher='ssh' or 'local'"
)
BAD_TIME = "time must be a Slurm time limit such as 1:00:00, 30 or 2-00:00:00; got {value!r}"
BAD_COUNT = "{option} must be a whole number of at least 1, got {value!r}"
N_MISMATCH = (
    "n={n} does not match nodes={nodes} x ranks_per_node={rpn}; give nodes and ranks_per_node "
    "(or n alone)"
)
SBATCH_FAILED = "sbatch refused the job: {error}"
PENDING = (
    "Slurm job {job} was still pending after {waited:.0f} s (squeue's reason: {reason}), "
    "so it was cancelled. {advice}"
)
ENDED = "Slurm job {job} ended before its engines registered ({state}). Its output:\n{output}"
ADVICE = {
    "PartitionNodeLimit": "The partition allows fewer nodes than asked for: ask for fewer "
    "nodes, or another partition.",
    "PartitionTimeLimit": "The time limit is over the partition's: ask for less time.",
    "Resources": "The nodes are busy: wait, or ask for fewer nodes or GPUs.",
    "Priority": "Other jobs come first: wait, or ask for fewer nodes.",
    "ReqNodeNotAvail": "A node asked for is down or drained: pick another.",
}

#: The job's batch script. ipyparallel fills {n}, {cluster_id}, {output_file} and
#: {program_and_args}; the launcher's own lines go in at {directives}. Each task says its
#: host first, and srun labels every line with the task, so a failure is traced to its node.
TEMPLATE = """#!/bin/sh
#SBATCH --export=ALL
#SBATCH --job-name={{cluster_id}}
#SBATCH --output={{output_file}}
#SBATCH --ntasks={{n}}
{directives}
echo "lepton: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST"
srun --label sh -c 'echo "lepton-host $(hostname)"; exec "$@"' engine {{program_and_args}}
"""

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$")


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class SlurmLauncher(Launcher):
    """Engines as the tasks of Slurm jobs (``sbatch`` + ``srun``)."""

    name: ClassVar[str] = "slurm"
    engines: ClassVar[str] = "slurm"
    remote: ClassVar[bool] = True

    #: Seconds between two squeue calls while waiting.
    poll_s = 1.0

    # -- options ---------------------------------------------------------------
    def ranks_per_node(self) -> int:
        o = self.options
        return int(o.ranks_per_node or o.gpus_per_node or 1)

    def node_count(self) -> int:
        o = self.options
        if o.nodes:
            return int(o.nodes)
        return math.ceil(o.n / self.ranks_per_node()) if o.n else 1

    def validate(self) -> None:
        o = self.options
        if o.hosts:
            raise ClusterError("hosts belongs to launcher='ssh'; under Slurm, give nodes=...")
        for option in ("nodes", "ranks_per_node", "gpus_per_node"):
            value = getattr(o, option)
            if value is not None and (isinstance(value, bool) or int(value) < 1):
                raise ClusterError(BAD_COUNT.format(option=option, value=value))
        if o.n is not None and o.nodes is not None and o.n != o.nodes * self.ranks_per_node():
            raise ClusterError(N_MISMATCH.format(n=o.n, nodes=o.nodes, rpn=self.ranks_per_node()))
        if not _TIME.match(str(o.time).strip()):
            raise ClusterError(BAD_TIME.format(value=o.time))
        if not shutil.which("sbatch"):
            raise ClusterError(NO_SBATCH)

    def world_size(self) -> int:
        return int(self.options.n or self.node_count() * self.ranks_per_node())

    def controller_ip(self) -> str:
        """The address this host uses to reach slurmctld, which the nodes reach too."""
        if self.options.controller_ip:
            return str(self.options.controller_ip)
        ctld = _slurmctld_address()
        addr = route_to(ctld)[0] if ctld else "127.0.0.1"
        return addr

    def configure(self, config: Config) -> None:
        launcher = config.SlurmEngineSetLauncher
        # sbatch's errors (on stderr) become part of what ipyparallel reads, so they can be shown
        launcher.submit_command = ["sh", "-c", 'exec sbatch "$@" 2>&1', "sbatch"]
        launcher.job_id_regexp = r"Submitted batch job (\d+)"
        launcher.job_id_regexp_group = 1

    # -- jobs ------------------------------------------------------------------
    def _directives(self, extra: list[str]) -> str:
        o = self.options
        lines = [f"--time={o.time}"]
        if o.partition:
            lines.append(f"--partition={o.partition}")
        if o.account:
            lines.append(f"--account={o.account}")
        if o.gpus_per_node:
            lines.append(f"--gpus-per-node={o.gpus_per_node}")
        lines += extra + [str(a) for a in o.slurm_args]
        return "\n".join(f"#SBATCH {_escape(line)}" for line in lines)

    def _submit(
        self, controller: Controller, count: int, seq: int, extra: list[str],
        env: dict[str, str], hosts: dict[str, int] | None,
    ) -> Launch:  # fmt: skip
        set_id = f"s{seq}-{uuid.uuid4().hex[:6]}"
        script = os.path.join(controller.profile_dir, f"slurm-{set_id}.sbatch")
        try:
            es = controller.start_engines(
                count, set_id, env,
                batch_template=TEMPLATE.format(directives=self._directives(extra)),
                batch_file_name=script,
            )  # fmt: skip
        except subprocess.CalledProcessError as e:
            raise ClusterError(SBATCH_FAILED.format(error=_called_output(e))) from None
        return Launch(set_id, count, seq, hosts=hosts,
                      info={"job": str(es.job_id), "output": es.output_file})  # fmt: skip

    def launch(self, controller: Controller, n: int, env: dict[str, str], seq: int) -> list[Launch]:
        nodes, rpn = self.node_count(), self.ranks_per_node()
        extra = [f"--nodes={nodes}"]
        if n == nodes * rpn:
            extra.append(f"--ntasks-per-node={rpn}")
        return [self._submit(controller, n, seq, extra, env, None)]

    def launch_on(
        self, controller: Controller, host: str, count: int, env: dict[str, str], seq: int
    ) -> list[Launch]:
        extra = ["--nodes=1", f"--nodelist={host}"]
        return [self._submit(controller, count, seq, extra, env, {host: count})]

    # -- waiting ---------------------------------------------------------------
    def _job(self, launch: Launch) -> tuple[str | None, str, str]:
        """(state, reason, nodes) from squeue, at most every ``poll_s``; state None once gone."""
        now = time.monotonic()
        cached = launch.info.get("squeue")
        if cached and now - cached[0] < self.poll_s:
            return cached[1]
        out = subprocess.run(
            ["squeue", "-h", "-j", launch.info["job"], "-o", "%T|%r|%N"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        line = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
        parts = line.split("|") if line else []
        found = (parts[0], parts[1], parts[2]) if len(parts) == 3 else (None, "", "")
        launch.info["squeue"] = (now, found)
        return found

    def _output(self, launch: Launch) -> str:
        try:
            with open(launch.info["output"], errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def problem(self, controller: Controller, launch: Launch, arrived: dict[str, int]) -> str | None:
        state, _, nodes = self._job(launch)
        if launch.hosts is None and state == "RUNNING" and nodes:
            launch.hosts = dict.fromkeys(_expand(nodes), self.ranks_per_node())
        output = self._output(launch)
        if REGISTRATION_TIMED_OUT.search(output):
            failed = _tasks_hosts(output, REGISTRATION_TIMED_OUT)
            where = Launch(launch.set_id, launch.count, launch.seq,
                           target=", ".join(failed) or launch.target)  # fmt: skip
            return f"in Slurm job {launch.info['job']}, " + self.explain_exit(where, output, {})
        if state is None or state in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "COMPLETED"):
            return ENDED.format(job=launch.info["job"], state=(state or "gone").lower(),
                                output=_indent(output))  # fmt: skip
        return None

    def status(self, controller: Controller, launch: Launch) -> str:
        state, reason, _ = self._job(launch)
        if state == "PENDING":
            return f"job {launch.info['job']} pending ({reason})"
        return f"job {launch.info['job']} {str(state).lower()}"

    def timed_out(self, controller: Controller, launch: Launch, arrived: dict[str, int]) -> str:
        launch.info.pop("squeue", None)
        state, reason, _ = self._job(launch)
        if state == "PENDING":
            waited = time.monotonic() - launch.started
            return PENDING.format(job=launch.info["job"], waited=waited, reason=reason,
                                  advice=ADVICE.get(reason, ""))  # fmt: skip
        where = ", ".join(missing_hosts(launch, arrived)) or "its nodes"
        return (
            f"Slurm job {launch.info['job']} is {str(state).lower()}, but the engines on {where} "
            "did not register. Its output:\n" + _indent(self._output(launch))
        )


    def settle(self, launches: list[Launch], timeout: float) -> None:
        """Wait until the cluster's jobs have left the queue (scancel returns before they do)."""
        jobs = {launch.info["job"] for launch in launches if launch.info.get("job")}
        deadline = time.monotonic() + timeout
        while jobs and time.monotonic() < deadline:
            out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(sorted(jobs))],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
            if out.returncode == 0:
                jobs &= set(out.stdout.split())
            if jobs:
                time.sleep(0.2)
        if jobs:
            self.log.warning("Slurm job(s) %s still in the queue %g s after scancel",
                             ", ".join(sorted(jobs)), timeout)  # fmt: skip


def _tasks_hosts(output: str, pattern: re.Pattern[str]) -> list[str]:
    """The hosts of the tasks whose (srun-labelled) output matches ``pattern``."""
    hosts: dict[str, str] = {}
    matched: set[str] = set()
    for line in output.splitlines():
        task, sep, text = line.partition(": ")
        if not sep or not task.strip().isdigit():
            continue
        if text.startswith("lepton-host "):
            hosts[task.strip()] = text.split(None, 1)[1].strip()
        elif pattern.search(text):
            matched.add(task.strip())
    return sorted({hosts[t] for t in matched if t in hosts})


def _indent(output: str, lines: int = 10) -> str:
    tail = [line for line in output.strip().splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in tail) or "    (no output)"


def _called_output(e: subprocess.CalledProcessError) -> str:
    text = e.output.decode(errors="replace") if isinstance(e.output, bytes) else str(e.output or "")
    return text.strip() or str(e)


def _expand(nodelist: str) -> list[str]:
    """``node[1-2],gpu7`` as host names, through ``scontrol show hostnames``."""
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    names = out.stdout.split()
    return names or [nodelist]


def _slurmctld_address() -> str | None:
    """slurmctld's address (or host name) from ``scontrol show config``; None if unknown."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                             timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^SlurmctldHost\[0\]\s*=\s*([^\s(]+)(?:\(([^)]+)\))?", out, re.M)
    if not m:
        return None
    return m.group(2) or m.group(1)
