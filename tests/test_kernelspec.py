"""The ``lepton`` kernelspec is installed with the package and runs a notebook."""

import json
import sys

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient


def test_kernelspec_is_installed():
    spec = KernelSpecManager().get_kernel_spec("lepton")
    assert spec.display_name == "Python 3 (Lepton)"
    assert spec.argv[0] == "python" and "--ext=lepton_nb" in spec.argv
    with open(f"{spec.resource_dir}/kernel.json") as f:
        assert json.load(f)["language"] == "python"


def test_lepton_kernel_runs_a_distributed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import sys; print(sys.executable)"),
        nbformat.v4.new_code_cell("%lepton_cluster start -n 2 --gpus none"),
        nbformat.v4.new_code_cell(
            "%%lepton_distributed --gather total\n"
            "import torch, torch.distributed as dist\n"
            "t = torch.tensor([rank + 1.0])\n"
            "dist.all_reduce(t)\n"
            "print('sum is', t.item())\n"
            "total = t.item()"
        ),
        nbformat.v4.new_code_cell("print(total)"),
        # regression: replies once sat unread in the kernel after a failing cell
        nbformat.v4.new_code_cell(
            "import lepton_nb\n"
            "from lepton_nb.cluster.job import Job\n"
            "c = lepton_nb.get_cluster()\n"
            "def whoami():\n"
            "    import lepton_nb\n"
            "    return lepton_nb.rank()\n"
            "for i in range(60):\n"
            "    try:\n"
            "        c.execute('ok = rank\\nif rank == 1:\\n    raise ValueError(1)', gather=['ok'], timeout=20)\n"
            "    except lepton_nb.DistributedTimeout:\n"
            "        raise\n"
            "    except lepton_nb.RemoteError:\n"
            "        pass\n"
            "    job = Job(c.client).apply(c.engines(), whoami)\n"
            "    assert job.wait(20), f'replies did not arrive in round {i}'\n"
            "print('60 rounds')"
        ),
        nbformat.v4.new_code_cell("%lepton_cluster stop"),
    ]
    client = NotebookClient(
        nb, kernel_name="lepton", timeout=180, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    def text(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    # no %load_ext: the kernel loaded the extension; the kernel runs this interpreter
    assert text(nb.cells[0]).strip() == sys.executable
    assert "[rank 0] sum is 3.0" in text(nb.cells[2]) and "[rank 1] sum is 3.0" in text(nb.cells[2])
    assert text(nb.cells[3]).strip() == "[3.0, 3.0]"
    assert text(nb.cells[4]).strip() == "60 rounds"
    assert "Stopped 2 ranks." in text(nb.cells[5])
