"""What an engine reports: launcher indices, its address toward the controller, versions."""

import json
import socket
import sys

import lepton_nb
from lepton_nb.engine import identity


def test_launch_index_from_each_launcher():
    slurm = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "42"}
    assert identity.launch_index(slurm) == identity.LaunchIndex("slurm", 3, 1, "42")
    ompi = {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}
    assert identity.launch_index(ompi) == identity.LaunchIndex("mpi", 5, 0)
    local = {"LEPTON_PROCID": "2", "LEPTON_LOCALID": "2"}
    assert identity.launch_index(local) == identity.LaunchIndex("local", 2, 2)
    assert identity.launch_index({}) == identity.LaunchIndex("unknown", None, None)


def test_controller_address_from_the_connection_info():
    info = {"interface": "tcp://10.1.2.3", "location": "login1"}
    env = {"IPP_CONNECTION_INFO": json.dumps(info)}
    assert identity.controller_address(env) == "10.1.2.3"
    info["interface"] = "tcp://*"
    assert identity.controller_address({"IPP_CONNECTION_INFO": json.dumps(info)}) == "login1"
    assert identity.controller_address({}) is None
    assert identity.controller_address({"IPP_CONNECTION_INFO": "not json"}) is None


def test_route_to_loopback_and_its_interface():
    assert identity.route_to("127.0.0.1") == ("127.0.0.1", "lo")
    assert identity.route_to(None) == ("127.0.0.1", "lo")


def test_report_here_imports_no_torch(monkeypatch):
    monkeypatch.delenv("IPP_CONNECTION_INFO", raising=False)
    monkeypatch.setenv("LEPTON_ENGINE_SET", "s9")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    report = identity.report()
    assert "torch" not in sys.modules
    assert report.host == socket.gethostname() and report.addr == "127.0.0.1"
    assert report.lepton == lepton_nb.__version__ and report.torch and report.cpus >= 1
    assert report.engine_set == "s9"
    assert report.versions()["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
