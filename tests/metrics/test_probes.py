import sys

import psutil

from lepton_nb.metrics import probes


def test_process_reads_rss_cpu_and_host_memory():
    p = probes.process(psutil.Process())
    assert p["rss"] > 10_000_000
    assert p["cpu_percent"] >= 0.0
    assert p["memory_total"] == psutil.virtual_memory().total


def test_torch_memory_never_starts_cuda():
    import torch

    assert probes.torch_memory() is None  # CUDA was never initialized in this process
    assert not torch.cuda.is_initialized()


def test_torch_memory_without_torch_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")
    assert probes.torch_memory() is None


def test_nvml_reads_the_gpu_or_none():
    from lepton_nb import _nvml

    assert probes.Nvml(None).read() is None  # a CPU rank
    reader = probes.Nvml(0)
    first, second = reader.read(), reader.read()
    reader.close()
    if _nvml.device_count():
        assert second["memory_total"] > 0 and 0 <= second["utilization"] <= 100
    else:  # no NVIDIA driver: unknown, not an error
        assert first is None and second is None

