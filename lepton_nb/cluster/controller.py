"""The cluster's ipyparallel controller and engine sets, driven from one event-loop thread.

``ipyparallel.Cluster`` does the work: it starts the controller and every
engine set through ipyparallel's own launchers. Its coroutines all run on one
daemon thread's event loop here, so the launchers' exit callbacks fire in a
script just as in a kernel, and a launcher that reports its engines gone is
seen at once.

Each cluster has a private profile folder (0700), removed on stop. Its
``ipcontroller_config.py`` makes the controller follow the kernel that started
it: it exits within a second of that process. Its ``ipengine_config.py`` has each
engine import torch while it registers (:mod:`lepton_nb.engine.preimport`). When
engines may run on other hosts, it also turns on ipyparallel's CurveZMQ encryption
and keeps message signing on (ipyparallel would otherwise drop the HMAC key under
Curve).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ipyparallel as ipp
import psutil
from IPython.paths import get_ipython_dir
from tornado.ioloop import IOLoop
from traitlets.config import Config

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Seconds any one call on the controller's loop may take before it counts as hung.
CALL_TIMEOUT_S = 300.0

FOLLOW_KERNEL = """\
# written by lepton_nb for one cluster's controller; removed when the cluster stops
import os
import signal
import threading
import time

import psutil

_KERNEL, _STARTED = {pid}, {started!r}   # the notebook kernel that started this controller


def _follow_kernel():
    while True:  # the controller exits within a second of its kernel
        try:  # a killed kernel stays a zombie until its parent reaps it: that is gone too
            kernel = psutil.Process(_KERNEL)
            alive = kernel.create_time() == _STARTED and kernel.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:  # the controller and its schedulers: they share its process group
            os.killpg(os.getpgid(0), signal.SIGKILL)
        time.sleep(1.0)


threading.Thread(target=_follow_kernel, name="lepton-follow-kernel", daemon=True).start()
"""

#: The hub pings every engine twice a second and drops one that misses more than 5 in a row,
#: so an engine whose host stops answering is named dead within about 3.5 s (not
#: ipyparallel's 30 s).
#: The pongs come from the engine's heart thread (a zmq device, no GIL), so a busy engine
#: still answers.
HEARTBEAT_CONFIG = """\
c.HeartMonitor.period = 500   # ms
c.HeartMonitor.max_heartmonitor_misses = 5
"""

CURVE_CONFIG = """\
c.IPController.enable_curve = True   # engines on other hosts: encrypt every message (CurveZMQ)
c.Session.key = os.urandom(32).hex().encode("ascii")   # and keep signing them (HMAC-SHA256)
"""


#: Each engine (on a host that sees this profile folder) imports torch while it registers.
IMPORT_TORCH_EARLY = """\
# written by lepton_nb for one cluster's engines; removed when the cluster stops
try:
    from lepton_nb.engine import preimport
except ImportError:  # an engine without lepton_nb: its report says so, and it is refused
    pass
else:
    preimport.start()
"""


def profile_root() -> str:
    """Where clusters' private profile folders live: ``$IPYTHONDIR/lepton``."""
    return os.path.join(get_ipython_dir(), "lepton")


class Controller:
    """One cluster's ipyparallel controller, its engine sets and the loop they run on."""

    def __init__(
        self,
        cluster_id: str,
        engines: str,
        controller_ip: str,
        curve: bool,
        config: Config,
        engine_timeout: float,
    ) -> None:
        self.cluster_id = cluster_id
        self.curve = curve
        self.profile_dir = os.path.join(profile_root(), cluster_id)
        os.makedirs(profile_root(), mode=0o700, exist_ok=True)
        os.makedirs(self.profile_dir, mode=0o700)
        me = psutil.Process()
        with open(os.path.join(self.profile_dir, "ipcontroller_config.py"), "w") as f:
            f.write(FOLLOW_KERNEL.format(pid=me.pid, started=me.create_time()))
            f.write(HEARTBEAT_CONFIG)
            if curve:
                f.write(CURVE_CONFIG)
        with open(os.path.join(self.profile_dir, "ipengine_config.py"), "w") as f:
            f.write(IMPORT_TORCH_EARLY)
        self._loop = shared_loop()
        self.ipp: ipp.Cluster = self.call(
            lambda: _make(
                engines=engines,
                n=0,
                cluster_id=cluster_id,
                profile_dir=self.profile_dir,
                controller_ip=controller_ip,
                controller_location=controller_ip,
                log_level=logging.ERROR,  # our own errors say what failed; no log dumps on stop
                engine_timeout=int(engine_timeout),
                shutdown_atexit=True,
                config=config,
            )
        )

    # -- the loop ---------------------------------------------------------------
    def call(self, fn: Callable[[], Awaitable[T] | T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run ``fn()`` (a coroutine function or a plain one) on the loop and return its result."""
        result: dict[str, Any] = {}
        done = threading.Event()

        async def run() -> None:
            try:
                value = fn()
                if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
                    value = await value
                result["value"] = value
            except BaseException as e:  # handed to the caller
                result["error"] = e
            finally:
                done.set()

        self._loop.add_callback(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the ipyparallel controller did not answer within {timeout:g} s")
        if "error" in result:
            raise result["error"]
        return result["value"]  # type: ignore[no-any-return]

    # -- controller and engines -----------------------------------------------
    def start(self) -> ipp.Client:
        """Start the controller and connect a client to it."""
        self.call(self.ipp.start_controller)
        client: ipp.Client = self.call(self.ipp.connect_client)
        self.secure_runtime_files()
        return client

    def connect_client(self) -> ipp.Client:
        """Another client of this controller, for one thread's own use (a client is not thread safe)."""
        client: ipp.Client = self.call(self.ipp.connect_client)
        return client

    def start_engines(self, n: int, set_id: str, env: dict[str, str], **traits: Any) -> Any:
        """Start an engine set of ``n`` engines through the configured ipyparallel launcher."""
        env = dict(env, LEPTON_ENGINE_SET=set_id)
        self.call(lambda: self.ipp.start_engines(n, engine_set_id=set_id, environment=env, **traits))
        self.secure_runtime_files()
        return self.ipp.engines[set_id]

    def engine_set(self, set_id: str) -> Any:
        """ipyparallel's launcher of one engine set; None once it was stopped."""
        return self.ipp.engines.get(set_id)

    def discard_engines(self, set_id: str) -> None:
        """Forget an engine set that failed to start (there is nothing of it to stop)."""
        self.ipp.engines.pop(set_id, None)

    def stop_engines(self, set_id: str) -> None:
        """Stop one engine set (its processes, its job)."""
        if set_id in self.ipp.engines:
            self.call(lambda: self.ipp.stop_engines(set_id))

    def connection_info(self) -> dict[str, Any]:
        """The engines' connection info (address, ports, keys) as the controller gave it."""
        info = self.call(self.ipp.controller.get_connection_info)
        return dict(info["engine"])

    def stop(self) -> None:
        """Stop every engine set and the controller; remove the profile folder."""
        try:
            self.call(self.ipp.stop_cluster, timeout=120)
        except Exception as e:  # the cluster is going away regardless
            log.warning("stopping the ipyparallel cluster: %s", e)
            self.ipp.engines.clear()  # nothing left for ipyparallel's exit handler to retry
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    # -- files ------------------------------------------------------------------
    def runtime_files(self) -> list[str]:
        """The cluster's files: connection info, logs, batch scripts."""
        found = []
        for folder, _, files in os.walk(self.profile_dir):
            found += [os.path.join(folder, f) for f in files]
        return found

    def secure_runtime_files(self) -> None:
        """Make every file of the cluster readable by its owner only (0600)."""
        for path in self.runtime_files():
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
                os.chmod(path, 0o700 if mode & stat.S_IXUSR else 0o600)
            except OSError:
                pass


_shared: list[IOLoop] = []
_shared_lock = threading.Lock()


def shared_loop() -> IOLoop:
    """The one event loop every cluster's controller runs on, in a daemon thread of its own.

    One for the process, never closed: what ipyparallel leaves scheduled when a cluster
    stops (a launcher's last signals) still runs, and start/stop cycles open nothing new.
    """
    with _shared_lock:
        if not _shared:
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(asyncio.new_event_loop())
                loop = IOLoop.current()
                _shared.append(loop)
                loop.add_callback(ready.set)
                loop.start()

            threading.Thread(target=main, name="lepton-controllers", daemon=True).start()
            if not ready.wait(10):
                raise RuntimeError("the controllers' event loop did not start")
        return _shared[0]


def _make(**kwargs: Any) -> ipp.Cluster:
    return ipp.Cluster(**kwargs)
