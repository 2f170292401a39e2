"""A real JupyterHub for the tests: real Unix users, PAM logins, LocalProcessSpawner, the culler.

:class:`Hub` starts ``jupyterhub`` with ``deploy/jupyterhub/jupyterhub_config.py``
(loaded as it ships) plus a few test settings: loopback ports, the
configurable-http-proxy that ``make test`` installs with npm, an admin service
token, and the idle culler limited to one user with a short timeout. The Unix
users are created for the session and removed after it, with everything they
ran. :class:`UserKernel` drives a kernel of a user's server through
``/user/<name>/api/kernels`` and its WebSocket, as a browser would.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "jupyterhub"
CHP = REPO / "build" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
#: Seconds the hub, a server or a kernel has to come up.
UP_TIMEOUT_S = 90.0
#: The site configuration the hub's environment gets for the session (removed after it).
SITE_CONFIG = Path(sys.prefix) / "etc" / "ipython" / "ipython_config.py"
SITE_MARK = "# lepton_nb test hub: the site configuration for this test session\n"


class HubUnavailable(RuntimeError):
    """The hub cannot run here (not root, no proxy); says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check, timeout: float, what: str):  # noqa: ANN001, ANN202 - a predicate
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


class Hub:
    """The session's hub: ``url``, an admin ``api`` and the users it serves."""

    def __init__(self, users: tuple[str, ...], culled: str, cull_timeout: int, folder: Path) -> None:
        self.users, self.culled, self.cull_timeout = users, culled, cull_timeout
        self.folder = folder
        self.password = secrets.token_urlsafe(12)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(24)
        self._created: list[str] = []
        self._opened: list[str] = []  # folders made traversable for the users, to close again
        self._proc: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------------
    def up(self, site_config: str) -> Hub:
        if os.geteuid() != 0:
            raise HubUnavailable("the hub tests need root (Unix users, LocalProcessSpawner)")
        if not CHP.exists():
            raise HubUnavailable(f"no configurable-http-proxy at {CHP} (make test installs it)")
        try:
            self._users()
            self._open_environment()
            self._site(site_config)
            self._start()
        except BaseException:
            self.down()
            raise
        return self

    def _users(self) -> None:
        for name in self.users:
            try:
                pwd.getpwnam(name)
                raise HubUnavailable(f"a Unix user {name!r} exists already; the tests make their own")
            except KeyError:
                pass
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, timeout=30)
            self._created.append(name)
            subprocess.run(["chpasswd"], input=f"{name}:{self.password}\n", text=True, check=True,
                           timeout=30)  # fmt: skip

    def _open_environment(self) -> None:
        """Let the users reach the environment the servers run (traverse only, no listing)."""
        interpreter = Path(os.path.realpath(sys.executable)).parent
        for start in (Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), interpreter, REPO):
            for folder in [start, *start.parents]:
                mode = folder.stat().st_mode
                if not mode & 0o001:
                    os.chmod(folder, mode | 0o001)
                    self._opened.append(str(folder))

    def _site(self, text: str) -> None:
        SITE_CONFIG.parent.mkdir(parents=True, exist_ok=True)
        if SITE_CONFIG.exists() and not SITE_CONFIG.read_text().startswith(SITE_MARK):
            raise HubUnavailable(f"{SITE_CONFIG} exists already; the tests will not replace it")
        SITE_CONFIG.write_text(SITE_MARK + text)

    def _start(self) -> None:
        f = self.folder
        config = f / "test_config.py"
        config.write_text(
            f"""c = get_config()
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{_free_port()}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{_free_port()}"
c.JupyterHub.last_activity_interval = 5
c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "5"}}
c.Spawner.http_timeout = 90
c.Spawner.start_timeout = 90
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {self.admin_token!r}}})
c.JupyterHub.load_roles = [
    {{"name": "idle-culler", "services": ["idle-culler"],
      "scopes": ["list:users", "read:users:activity!user={self.culled}",
                 "read:servers!user={self.culled}", "delete:servers!user={self.culled}"]}},
    {{"name": "admin", "services": ["test-admin"]}},
]
"""
        )
        env = dict(
            os.environ,
            LEPTON_HUB_USERS=" ".join(self.users),
            LEPTON_HUB_BIND_URL=self.url,
            LEPTON_HUB_STATE=str(f),
            LEPTON_HUB_CULL_TIMEOUT=str(self.cull_timeout),
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        )
        env.pop("IPYTHONDIR", None)  # each user's own, in their home
        env.pop("JUPYTER_RUNTIME_DIR", None)
        log = open(f / "jupyterhub.log", "ab")
        self._proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
            cwd=f, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

        def answers() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log_tail()}")
            try:
                return requests.get(self.url + "/hub/api/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        _wait(answers, UP_TIMEOUT_S, "JupyterHub to answer")

    def down(self) -> None:
        """Stop the hub, the users' servers and everything they run; remove the users."""
        if self._proc is not None:
            for name in self._created:
                try:
                    self.api("DELETE", f"/users/{name}/server", timeout=30)
                except Exception:  # the hub may be gone already
                    pass
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc = None
        for name in self._created:
            subprocess.run(["pkill", "-KILL", "-u", name], timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_processes_of(n) for n in self._created):
            time.sleep(0.1)
        for name in reversed(self._created):
            subprocess.run(["userdel", "-r", name], capture_output=True, timeout=30)
        self._created.clear()
        for folder in reversed(self._opened):
            os.chmod(folder, os.stat(folder).st_mode & ~0o001)
        self._opened.clear()
        if SITE_CONFIG.exists() and SITE_CONFIG.read_text().startswith(SITE_MARK):
            SITE_CONFIG.unlink()
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        path = self.folder / "jupyterhub.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- the REST API ------------------------------------------------------------
    def api(self, method: str, path: str, timeout: float = 30, **kw: Any) -> requests.Response:
        """A hub REST API call with the admin service's token."""
        r = requests.request(method, f"{self.url}/hub/api{path}", timeout=timeout,
                             headers={"Authorization": f"token {self.admin_token}"}, **kw)  # fmt: skip
        return r

    def start_server(self, name: str) -> None:
        """Spawn ``name``'s server and wait until it is ready."""
        r = self.api("POST", f"/users/{name}/server")
        if r.status_code not in (201, 202, 400):  # 400: it runs already
            raise RuntimeError(f"starting {name}'s server: {r.status_code} {r.text}\n{self.log_tail()}")

        def ready() -> bool:
            server = self.api("GET", f"/users/{name}").json().get("servers", {}).get("")
            return bool(server and server.get("ready"))

        _wait(ready, UP_TIMEOUT_S, f"{name}'s server to be ready\n{self.log_tail()}")

    def server_running(self, name: str) -> bool:
        return "" in self.api("GET", f"/users/{name}").json().get("servers", {})

    def token(self, name: str) -> str:
        """A new API token of ``name``'s (what their browser session would carry)."""
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "lepton tests",
                                                             "expires_in": 3600})  # fmt: skip
        r.raise_for_status()
        return str(r.json()["token"])

    def get(self, name: str, path: str, token: str, **kw: Any) -> requests.Response:
        """GET ``/user/<name>/<path>`` through the hub's proxy with ``token``."""
        return requests.get(f"{self.url}/user/{name}/{path}", timeout=30,
                            headers={"Authorization": f"token {token}"}, **kw)  # fmt: skip


def _processes_of(name: str) -> list[int]:
    uid = pwd.getpwnam(name).pw_uid
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def processes_of(name: str) -> list[int]:
    """Every process running as Unix user ``name``."""
    return _processes_of(name)


class UserKernel:
    """A kernel of a user's server, driven over ``/user/<name>/api/kernels`` and its WebSocket."""

    def __init__(self, hub: Hub, name: str, token: str, kernel: str = "lepton") -> None:
        import websocket

        self.hub, self.name, self.token = hub, name, token
        r = requests.post(f"{hub.url}/user/{name}/api/kernels", json={"name": kernel}, timeout=60,
                          headers={"Authorization": f"token {token}"})  # fmt: skip
        r.raise_for_status()
        self.id = r.json()["id"]
        ws_url = hub.url.replace("http", "ws", 1) + f"/user/{name}/api/kernels/{self.id}/channels"
        self.ws = websocket.create_connection(ws_url, timeout=UP_TIMEOUT_S,
                                              header=[f"Authorization: token {token}"])  # fmt: skip
        self.session = uuid.uuid4().hex

    def run(self, code: str, timeout: float = 180) -> str:
        """Run ``code``; its stdout; AssertionError with the traceback if it raised."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": self.session, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))  # fmt: skip
        out: list[str] = []
        reply = None
        deadline = time.monotonic() + timeout
        idle = False
        while reply is None or not idle:
            self.ws.settimeout(max(1.0, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "execute_reply":
                reply = msg["content"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}'s cell did not finish within {timeout:g} s")
        if reply["status"] != "ok":
            raise AssertionError("\n".join(reply.get("traceback", [])) or reply)
        return "".join(out)

    def json(self, code: str) -> Any:
        return json.loads(self.run(code).strip().splitlines()[-1])

    def pid(self) -> int:
        """The kernel's process (it runs as the user)."""
        return int(self.json("import os; print(os.getpid())"))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
