"""Every CUDA kernel compiles to PTX for sm_90 (real numba-cuda and NVVM, no GPU needed)."""

import inspect

import pytest
from numba import cuda

from lepton_nb.compress.cuda import kernels as cuda_kernels
from lepton_nb.compress.cuda import topk_kernels

CASES = [(name, sig) for name, (_, sigs) in cuda_kernels.KERNELS.items() for sig in sigs]


def test_the_table_lists_every_kernel_of_the_module():
    # device functions are jitted objects; what stays a public plain function is a kernel
    kernels = {
        name
        for module in (cuda_kernels, topk_kernels)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
    }
    assert kernels == set(cuda_kernels.KERNELS)
    assert not cuda_kernels.SIMULATOR


@pytest.mark.parametrize(("name", "sig"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_kernel_compiles_to_ptx_for_sm90(name, sig):
    fn, _ = cuda_kernels.KERNELS[name]
    ptx, _ = cuda.compile_ptx(fn, sig, cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
    assert "atom.shared.add.f16" not in ptx and "atom.global.add.noftz.f16" not in ptx
    assert "shfl.sync" not in ptx and "vote.sync" not in ptx
