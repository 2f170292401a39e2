"""The small protocol every launcher follows: launch engines, say what went wrong, stop them.

A launcher configures one of ipyparallel's own engine-set launchers and
starts engine sets through ``ipyparallel.Cluster``; it never runs ``sbatch``
or ``ssh`` to start an engine itself. The cluster then waits for the engines
to register and places ranks from what they report (:mod:`..placement`), the
same way for every launcher. What differs per launcher:

- :meth:`Launcher.validate`: refuse bad options before anything starts;
- :meth:`Launcher.world_size`: how many ranks a start brings;
- :meth:`Launcher.controller_ip`: where the controller must listen for the engines to reach it;
- :meth:`Launcher.launch` and :meth:`Launcher.launch_on`: start engines (all, or on one host);
- :meth:`Launcher.problem`: a failure seen while waiting (a job that ended, an engine that exited);
- :meth:`Launcher.timed_out`: what to say, and undo, when engines did not come in time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets.config import Config, LoggingConfigurable

from ...errors import ClusterError

if TYPE_CHECKING:  # pragma: no cover
    from ..controller import Controller
    from ..options import ClusterOptions

#: What ipyparallel's engine prints when the controller never answered its registration.
REGISTRATION_TIMED_OUT = re.compile(r"Registration timed out after ([\d.]+) seconds")

UNREACHABLE = (
    "the engine(s) on {host} could not reach the controller at {addr} "
    "(registration timed out after {seconds} s). Check that {host} can reach that address "
    "(routes, firewall), or set where the controller listens: controller_ip=... "
    "(c.Cluster.controller_ip)"
)


@dataclass
class Launch:
    """One engine set a launcher started, and what it should bring."""

    set_id: str
    count: int
    seq: int
    hosts: dict[str, int] | None = None  # engines expected per host, where known in advance
    target: str | None = None  # where the launcher put them (an ssh host, a Slurm node)
    started: float = field(default_factory=time.monotonic)
    info: dict[str, Any] = field(default_factory=dict)  # launcher-specific (a job id, ...)


class Launcher(LoggingConfigurable):
    """Base of every launcher; subclasses live one per module in this package."""

    #: The name users pick it by (``Cluster(launcher=...)``).
    name: ClassVar[str] = ""
    #: ipyparallel's engine-set launcher it configures (an ipyparallel entry-point name).
    engines: ClassVar[str] = "local"
    #: Whether engines may run on other hosts (then ipyparallel's CurveZMQ encryption is on).
    remote: ClassVar[bool] = True

    def __init__(self, options: ClusterOptions, **kwargs: Any) -> None:
        super().__init__(parent=options, **kwargs)
        self.options = options

    # -- before anything starts ------------------------------------------------
    def validate(self) -> None:
        """Raise ClusterError for options this launcher cannot use (nothing has started yet)."""

    def world_size(self) -> int:
        """The number of ranks a start brings."""
        return self.options.n or 2

    def node_count(self) -> int:
        """The hosts a start spans (for the site's ``max_nodes``)."""
        return 1

    def controller_ip(self) -> str:
        """The address the controller listens on, reachable from every engine."""
        return self.options.controller_ip or "127.0.0.1"

    def configure(self, config: Config) -> None:
        """Add this launcher's settings for ipyparallel's launchers to ``config``."""

    # -- starting engines --------------------------------------------------------
    def launch(self, controller: Controller, n: int, env: dict[str, str], seq: int) -> list[Launch]:
        """Start engine sets for ``n`` ranks; return them."""
        raise NotImplementedError

    def launch_on(
        self, controller: Controller, host: str, count: int, env: dict[str, str], seq: int
    ) -> list[Launch]:
        """Start ``count`` engines on ``host`` (a restart, or a scale)."""
        raise NotImplementedError

    def hosts_for(self, count: int, per_host: dict[str, int]) -> dict[str, int]:
        """Where ``count`` more ranks go, given the ranks each host has (scale up)."""
        load = dict(per_host)
        out: dict[str, int] = {}
        for _ in range(count):
            host = min(load, key=lambda h: load[h])
            load[host] += 1
            out[host] = out.get(host, 0) + 1
        return out

    # -- while waiting -------------------------------------------------------------
    def problem(self, controller: Controller, launch: Launch, arrived: dict[str, int]) -> str | None:
        """A failure that means ``launch``'s engines will not come (None: keep waiting)."""
        es = controller.engine_set(launch.set_id)
        if es is None or es.state != "after":
            return None
        return self.explain_exit(launch, _output(es), arrived)

    def status(self, controller: Controller, launch: Launch) -> str:
        """A few words on where ``launch`` stands, for the progress bar."""
        return ""

    def timed_out(self, controller: Controller, launch: Launch, arrived: dict[str, int]) -> str:
        """What to say when ``launch``'s engines did not all register in time."""
        es = controller.engine_set(launch.set_id)
        output = _output(es) if es is not None else ""
        return self.explain_exit(launch, output, arrived) or _tail(output)

    def explain_exit(self, launch: Launch, output: str, arrived: dict[str, int]) -> str:
        """Why engines exited, from their output: an unreachable controller, or the output's tail."""
        m = REGISTRATION_TIMED_OUT.search(output)
        if m:
            host = ", ".join(missing_hosts(launch, arrived)) or launch.target or "a host"
            return UNREACHABLE.format(host=host, addr=self.controller_ip(), seconds=m.group(1))
        return "its engines exited:\n" + _tail(output)

    def settle(self, launches: list[Launch], timeout: float) -> None:
        """After the cluster stopped: wait (at most ``timeout`` s) until ``launches`` are gone."""

    def stop(self, controller: Controller, launch: Launch) -> None:
        """Stop ``launch``'s engine set through ipyparallel."""
        if controller.engine_set(launch.set_id) is not None:
            try:
                controller.stop_engines(launch.set_id)
            except Exception as e:  # it may be gone already
                self.log.debug("stopping engine set %s: %s", launch.set_id, e)


def missing_hosts(launch: Launch, arrived: dict[str, int]) -> list[str]:
    """The hosts of ``launch`` with fewer registered engines than expected."""
    if not launch.hosts:
        return []
    return [h for h, n in launch.hosts.items() if arrived.get(h, 0) < n]


def _output(es: Any) -> str:
    try:
        return str(es.get_output() or "")
    except Exception as e:  # the output may not be reachable (a remote file)
        return f"(its output could not be read: {e})"


def _tail(output: str, lines: int = 8) -> str:
    tail = [line for line in output.strip().splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in tail)


def unknown(name: str, known: list[str]) -> ClusterError:
    return ClusterError(f"unknown launcher {name!r}: use one of {', '.join(known)}")
