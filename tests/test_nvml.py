"""The one NVML owner: no driver is a state, not an error; CUDA_VISIBLE_DEVICES parsed once."""

import os

from lepton_nb import _nvml


def test_no_driver_is_a_state_and_every_reading_answers():
    state = _nvml.state()
    assert isinstance(state, _nvml.NvmlState)
    if not os.path.exists("/dev/nvidia0"):
        assert state is not _nvml.NvmlState.RUNNING
        assert _nvml.device_count() == 0 and _nvml.handle(0) is None and _nvml.memory(0) is None
    assert _nvml.state() is state  # initialised once


def test_visible_devices():
    assert _nvml.visible_devices({}) is None  # unset: every GPU
    assert _nvml.visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert _nvml.visible_devices({"CUDA_VISIBLE_DEVICES": "2,0"}) == [2, 0]
    assert _nvml.visible_devices({"CUDA_VISIBLE_DEVICES": "1,-1,3"}) == [1]  # CUDA stops at -1
    if _nvml.device_count() == 0:
        assert _nvml.visible_devices({"CUDA_VISIBLE_DEVICES": "GPU-abc,1"}) == []
    assert _nvml.host_gpus({"CUDA_VISIBLE_DEVICES": "3"}) == [3]
