"""A two-node test rig on this one machine: network namespaces, munge, Slurm and sshd (root only).

Each node is a network namespace (``lepton-node1``, ``lepton-node2``) joined to a
bridge in the root namespace by a veth pair, with its own hostname (``unshare
--uts``) and its own address in 10.213.0.0/24, which only these namespaces use.
``/etc/netns/<ns>/hosts`` names both nodes and this machine; its ``resolv.conf``
points at the node's own loopback, where no name server listens, so a name that
is not in the hosts file fails at once. The daemons:

- ``munged``, run as the munge user with its own key and socket in the rig's folder;
- ``slurmctld`` in the root namespace, on the bridge address, and one ``slurmd -N
  <node>`` inside each namespace; the configuration is the rig's own file, given
  to the daemons with ``-f`` and to the clients through ``SLURM_CONF``, never
  written to /etc/slurm;
- ``sshd`` inside each namespace, with a host key and a client key the rig makes;
  the client's configuration shares one connection per node (``ControlMaster``),
  as HPC users' own ssh configurations often do.

:meth:`Rig.up` starts everything and waits until both nodes are idle in Slurm and
both sshds answer; any failure on the way removes what was made. :meth:`Rig.down`
stops every daemon, every process left in the namespaces, the namespaces and the
bridge, and checks that nothing is left. A rig left by a killed run is removed by
the next :meth:`Rig.up`. Tests and benchmarks share this module
(``tests/hosts/conftest.py``, ``benchmarks/bench_hosts.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUBNET = "10.213.0"
BRIDGE = "lepton-br0"
CONTROLLER_ADDR = f"{SUBNET}.1"
#: A second address of this machine on the bridge: a controller listening there can be cut
#: off from one node (:meth:`Rig.unreachable`) while ssh and Slurm still reach the node.
SECOND_ADDR = f"{SUBNET}.2"
NODE_NAMES = ("node1", "node2")
NETNS_PREFIX = "lepton-"
#: The folder every rig file lives in; fixed, so that a killed run's rig can be found.
RIG_DIR = Path(tempfile.gettempdir()) / "lepton-rig"
SLURMCTLD_PORT = 16817
SLURMD_PORT = 16818
#: Seconds for the whole rig to come up (daemons started, nodes idle, sshd answering).
UP_TIMEOUT_S = 60.0
#: Seconds a daemon has to exit after SIGTERM before it is killed.
STOP_GRACE_S = 5.0

REQUIRED = {
    "ip": "iproute2",
    "tc": "iproute2",
    "munged": "munge",
    "slurmctld": "slurm-wlm",
    "slurmd": "slurm-wlm",
    "sbatch": "slurm-wlm",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


class RigUnavailable(RuntimeError):
    """The rig cannot run here (not root, a package missing, no namespaces); says why."""


@dataclass(frozen=True)
class Node:
    """One emulated host: its name (hostname and Slurm node), namespace, address and links."""

    name: str
    index: int

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}"

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def veth(self) -> str:
        """The veth end in the root namespace (its tx is what the node receives)."""
        return f"lepv-{self.name}"

    @property
    def ifname(self) -> str:
        """The interface inside the node's namespace."""
        return "lep0"

    def prefix(self) -> list[str]:
        """Command prefix that runs a program on this node (namespace, hostname, /etc/hosts)."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c",
                f'hostname {self.name}; exec "$@"', "sh"]  # fmt: skip


def _run(args: Sequence[str], timeout: float = 30, check: bool = True, **kw) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
        raise subprocess.CalledProcessError(proc.returncode, list(args), output=msg)
    return proc.stdout


def _pids_in_netns(netns: str) -> list[int]:
    try:
        out = _run(["ip", "netns", "pids", netns], check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_all(pids: Sequence[int], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL whatever is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_exists(p) for p in alive):
            time.sleep(0.05)
        pids = [p for p in alive if _exists(p)]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _mentioning(text: str) -> list[int]:
    """Processes (not this one) whose command line mentions ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


class Rig:
    """The two-node rig. ``with Rig() as rig:`` or ``rig.up()`` / ``rig.down()``."""

    def __init__(self, nodes: Sequence[str] = NODE_NAMES) -> None:
        self.nodes = [Node(name, i + 1) for i, name in enumerate(nodes)]
        self.dir = RIG_DIR
        self.hostname = socket.gethostname()
        self._daemons: list[tuple[str, subprocess.Popen]] = []
        self.is_up = False

    # -- what tests use -------------------------------------------------------
    @property
    def controller_addr(self) -> str:
        """The bridge address of this machine: where engines on the nodes reach it."""
        return CONTROLLER_ADDR

    @property
    def slurm_conf(self) -> Path:
        return self.dir / "slurm.conf"

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def ssh_args(self) -> list[str]:
        """Arguments that make ``ssh`` and ``scp`` reach the nodes by name with the rig's key."""
        return ["-F", str(self.ssh_config)]

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm's clients (sbatch, squeue, scancel) and ipyparallel's launchers."""
        return {"SLURM_CONF": str(self.slurm_conf)}

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def run_on(self, node: str, args: Sequence[str], timeout: float = 30) -> str:
        """Run a command on ``node`` and return its output."""
        return _run(self.node(node).prefix() + list(args), timeout=timeout)

    def pids(self, node: str) -> list[int]:
        """Every process in ``node``'s namespace, except the rig's own daemons and ssh sessions.

        An sshd session stays open while the client's connection master persists.
        """
        own = {p.pid for _, p in self._daemons}
        return [p for p in _pids_in_netns(self.node(node).netns)
                if p not in own and _comm(p) != "sshd"]  # fmt: skip

    def rx_bytes(self, node: str) -> int:
        """Bytes sent into ``node`` over its link so far (the root end's tx counter)."""
        with open(f"/sys/class/net/{self.node(node).veth}/statistics/tx_bytes") as f:
            return int(f.read())

    def squeue(self) -> list[str]:
        """The rig's jobs still in the queue: ``"<id> <state> <name>"`` lines."""
        out = _run(["squeue", "-h", "-o", "%i %T %j"], env={**os.environ, **self.env})
        return [line.strip() for line in out.splitlines() if line.strip()]

    def shape(self, rate: str = "1gbit") -> None:
        """Shape both directions of every node's link to ``rate`` (tc tbf)."""
        tbf = ["tbf", "rate", rate, "burst", "256kb", "latency", "50ms"]
        for n in self.nodes:
            _run(["tc", "qdisc", "replace", "dev", n.veth, "root", *tbf])
            _run(["tc", "-n", n.netns, "qdisc", "replace", "dev", n.ifname, "root", *tbf])

    def unshape(self) -> None:
        """Remove the shaping again."""
        for n in self.nodes:
            _run(["tc", "qdisc", "del", "dev", n.veth, "root"], check=False)
            _run(["tc", "-n", n.netns, "qdisc", "del", "dev", n.ifname, "root"], check=False)

    @contextmanager
    def unreachable(self, node: str, addr: str = SECOND_ADDR) -> Iterator[None]:
        """Inside the block, ``node`` cannot reach ``addr`` (a prohibit route in its namespace).

        The default is :data:`SECOND_ADDR`, so ssh and Slurm (on the first address) still work.
        """
        ns = self.node(node).netns
        _run(["ip", "-n", ns, "route", "add", "prohibit", f"{addr}/32"])
        try:
            yield
        finally:
            _run(["ip", "-n", ns, "route", "del", "prohibit", f"{addr}/32"], check=False)

    @contextmanager
    def link_down(self, node: str) -> Iterator[None]:
        """Inside the block, ``node``'s link is down: it stops answering anyone, as a dead host."""
        veth = self.node(node).veth
        _run(["ip", "link", "set", veth, "down"])
        try:
            yield
        finally:
            _run(["ip", "link", "set", veth, "up"], check=False)

    # -- lifecycle ------------------------------------------------------------
    def __enter__(self) -> Rig:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self, timeout: float = UP_TIMEOUT_S) -> Rig:
        """Start the rig; RigUnavailable says why it cannot run here."""
        self.check_requirements()
        remove_stale()
        try:
            self.dir.mkdir(mode=0o711)  # the munge user passes through to its socket
            self._network()
            self._munge()
            self._slurm()
            self._sshd()
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.down()
            raise
        os.environ.update(self.env)
        self.is_up = True
        return self

    def down(self) -> None:
        """Stop and remove everything the rig made; safe to call twice or after a failed up."""
        self.is_up = False
        if self.slurm_conf.exists():
            _run(["scancel", "--full", "-u", "root"], check=False, timeout=10,
                 env={**os.environ, **self.env})  # fmt: skip
        for node in self.nodes:  # engines, job steps, sshd sessions: everything on the nodes
            _kill_all(_pids_in_netns(node.netns))
        daemons, self._daemons = self._daemons, []
        _kill_all([p.pid for _, p in reversed(daemons)])
        _kill_all(_mentioning(str(self.dir)))  # ssh's connection masters, anything else of the rig's
        for _, p in daemons:
            try:
                p.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        for node in self.nodes:
            _run(["ip", "netns", "del", node.netns], check=False)
            shutil.rmtree(f"/etc/netns/{node.netns}", ignore_errors=True)
        _run(["ip", "link", "del", BRIDGE], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.environ.get("SLURM_CONF") == str(self.slurm_conf):
            del os.environ["SLURM_CONF"]
        left = leftovers()
        if left:
            raise RuntimeError(f"the rig left things behind: {left}")

    # -- steps ----------------------------------------------------------------
    @staticmethod
    def check_requirements() -> None:
        if os.geteuid() != 0:
            raise RigUnavailable("the multi-host rig needs root (network namespaces, daemons)")
        missing = sorted({pkg for cmd, pkg in REQUIRED.items() if not _which(cmd)})
        if missing:
            raise RigUnavailable(
                "the multi-host rig needs the Debian packages " + ", ".join(missing)
                + " (make test installs them)"
            )

    def _network(self) -> None:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{CONTROLLER_ADDR}/24", "dev", BRIDGE])
        _run(["ip", "addr", "add", f"{SECOND_ADDR}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        hosts = "127.0.0.1 localhost\n" + "".join(f"{n.addr} {n.name}\n" for n in self.nodes)
        hosts += f"{CONTROLLER_ADDR} {self.hostname}\n"
        for n in self.nodes:
            _run(["ip", "netns", "add", n.netns])
            _run(["ip", "link", "add", n.veth, "type", "veth", "peer", "name", n.ifname,
                  "netns", n.netns])  # fmt: skip
            _run(["ip", "link", "set", n.veth, "master", BRIDGE])
            _run(["ip", "link", "set", n.veth, "up"])
            _run(["ip", "-n", n.netns, "addr", "add", f"{n.addr}/24", "dev", n.ifname])
            _run(["ip", "-n", n.netns, "link", "set", "lo", "up"])
            _run(["ip", "-n", n.netns, "link", "set", n.ifname, "up"])
            _run(["ip", "-n", n.netns, "route", "add", "default", "via", CONTROLLER_ADDR])
            etc = Path("/etc/netns") / n.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts)
            (etc / "hostname").write_text(n.name + "\n")
            # no name server is reachable from a node: a lookup that misses the hosts file
            # (c10d's reverse lookups of IPv6-mapped peers) must fail at once, not after 10 s
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def _daemon(self, name: str, args: Sequence[str], user: str | None = None) -> None:
        log = open(self.dir / f"{name}.out", "ab")
        kw: dict = {"stdout": log, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
        if user:
            kw["user"] = user
        proc = subprocess.Popen(list(args), start_new_session=True, **kw)
        log.close()
        self._daemons.append((name, proc))

    def _munge(self) -> None:
        folder = self.dir / "munge"
        folder.mkdir(mode=0o711)
        key = folder / "munge.key"
        _run(["mungekey", "--create", "--keyfile", str(key)])
        shutil.chown(folder, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        os.chmod(key, 0o600)
        self._daemon("munged", [
            "munged", "--foreground", "--force", f"--key-file={key}",
            f"--socket={folder / 'munge.socket'}", f"--pid-file={folder / 'munged.pid'}",
            f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}",
        ], user="munge")  # fmt: skip
        _wait_for(lambda: (folder / "munge.socket").exists(), 10, "munged's socket",
                  lambda: self._logs("munged.out", "munge/munged.log"))  # fmt: skip
        os.chmod(folder, 0o711)  # munged wants execute permission for all on its socket's folder

    def _slurm(self) -> None:
        d = self.dir
        (d / "state").mkdir()
        nodes = "".join(
            f"NodeName={n.name} NodeAddr={n.addr} NodeHostname={n.name} CPUs=8 "
            "RealMemory=4000 State=UNKNOWN\n"
            for n in self.nodes
        )
        names = ",".join(n.name for n in self.nodes)
        self.slurm_conf.write_text(
            f"""# the lepton_nb test rig's own Slurm (tests/hosts/rig.py); never /etc/slurm
ClusterName=lepton-rig
SlurmctldHost={self.hostname}({CONTROLLER_ADDR})
SlurmctldPort={SLURMCTLD_PORT}
SlurmdPort={SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d / "munge" / "munge.socket"}
StateSaveLocation={d / "state"}
SlurmdSpoolDir={d}/d-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/d-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=2
MinJobAge=2
InactiveLimit=0
SlurmdTimeout=120
MessageTimeout=10
{nodes}PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP
PartitionName=small Nodes={names} MaxNodes=1 MaxTime=INFINITE State=UP
"""
        )
        (d / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")
        self._daemon("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.slurm_conf)])
        for n in self.nodes:
            self._daemon(
                f"slurmd-{n.name}",
                n.prefix() + ["slurmd", "-D", "-N", n.name, "-f", str(self.slurm_conf)],
            )

    def _sshd(self) -> None:
        d = self.dir
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id_ed25519")])
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        os.chmod(d / "authorized_keys", 0o600)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        lines = [f"Host {n.name}\n  HostName {n.addr}\n" for n in self.nodes]
        self.ssh_config.write_text(
            "".join(lines)
            + f"""Host *
  User root
  IdentityFile {d / "id_ed25519"}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 5
  ControlMaster auto
  ControlPath {d}/cm-%C
  ControlPersist 120
"""
        )
        for n in self.nodes:
            conf = d / f"sshd-{n.name}.conf"
            conf.write_text(
                f"""ListenAddress {n.addr}
Port 22
HostKey {d / "host_key"}
PidFile {d}/sshd-{n.name}.pid
AuthorizedKeysFile {d / "authorized_keys"}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv none
Subsystem sftp internal-sftp
"""
            )
            self._daemon(f"sshd-{n.name}", n.prefix() + ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)])

    def _wait_ready(self, deadline: float) -> None:
        env = {**os.environ, **self.env}

        def nodes_idle() -> bool:
            self._check_daemons()
            out = _run(["sinfo", "-h", "-N", "-o", "%N %t"], env=env, check=False, timeout=10)
            states = dict(line.split() for line in out.splitlines() if line.strip())
            return all(states.get(n.name, "").startswith("idle") for n in self.nodes)

        _wait_for(nodes_idle, deadline - time.monotonic(), "both Slurm nodes to be idle",
                  lambda: self._logs("slurmctld.log", "d-node1.log"))  # fmt: skip
        for n in self.nodes:
            def answers(n: Node = n) -> bool:
                self._check_daemons()
                p = subprocess.run(["ssh", *self.ssh_args, n.name, "hostname"],
                                   capture_output=True, text=True, timeout=10)  # fmt: skip
                return p.returncode == 0 and p.stdout.strip() == n.name

            _wait_for(answers, deadline - time.monotonic(), f"sshd on {n.name}",
                      lambda n=n: self._logs(f"sshd-{n.name}.out"))  # fmt: skip

    def _check_daemons(self) -> None:
        for name, p in self._daemons:
            if p.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {p.returncode}:\n{self._logs(f'{name}.out')}"
                )

    def _logs(self, *names: str) -> str:
        out = []
        for name in names:
            path = self.dir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def describe(self) -> dict[str, object]:
        """The rig's facts, as the example notebook and benchmarks read them."""
        return {
            "controller_addr": CONTROLLER_ADDR,
            "nodes": {n.name: n.addr for n in self.nodes},
            "slurm_conf": str(self.slurm_conf),
            "ssh_args": self.ssh_args,
        }


def _which(cmd: str) -> bool:
    return bool(shutil.which(cmd) or shutil.which(cmd, path="/usr/sbin:/sbin"))


def _wait_for(check, timeout: float, what: str, detail=None) -> None:  # noqa: ANN001
    """Poll ``check`` every 0.1 s until it is true; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            if check():
                return
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise TimeoutError(f"the rig waited {timeout:.0f} s for {what}{extra}")
        time.sleep(0.1)


def leftovers() -> list[str]:
    """Namespaces, bridge, daemons or files of a rig that are still here."""
    left = []
    try:
        names = _run(["ip", "netns", "list"], check=False).split("\n")
    except OSError:
        names = []
    left += [n.split()[0] for n in names if n.strip().startswith(NETNS_PREFIX + "node")]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        left.append(BRIDGE)
    if RIG_DIR.exists():
        left.append(str(RIG_DIR))
    return left


def remove_stale() -> None:
    """Remove a rig that a killed run left behind (its namespaces, daemons, bridge, files)."""
    _kill_all(_mentioning(str(RIG_DIR)))
    for pidfile in RIG_DIR.glob("**/*.pid") if RIG_DIR.exists() else []:
        try:
            _kill_all([int(pidfile.read_text().split()[0])])
        except (ValueError, OSError, IndexError):
            pass
    for name in NODE_NAMES:
        ns = NETNS_PREFIX + name
        _kill_all(_pids_in_netns(ns))
        _run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
    _run(["ip", "link", "del", BRIDGE], check=False)
    shutil.rmtree(RIG_DIR, ignore_errors=True)


_shared: list[Rig] = []


def shared() -> Rig:
    """The rig of this test session, brought up on first use (RigUnavailable says why not)."""
    if not _shared:
        rig = Rig().up()
        _shared.append(rig)
    return _shared[0]


def shutdown() -> None:
    """Take the session's rig down, if it was brought up (pytest_sessionfinish calls this)."""
    while _shared:
        _shared.pop().down()


def main(argv: Sequence[str]) -> int:
    """``python tests/hosts/rig.py up|down|check``: for trying the rig by hand."""
    action = argv[0] if argv else "check"
    if action == "down":
        remove_stale()
        return 0
    rig = Rig()
    rig.up()
    print(json.dumps(rig.describe(), indent=1))
    if action == "check":
        print(rig.run_on("node1", ["hostname"]).strip(), rig.squeue())
        out = _run(["srun", "-N2", "-n2", "hostname"], env={**os.environ, **rig.env}, timeout=60)
        print("srun -N2:", out.split())
        rig.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
