"""By default the server follows only clusters started from its own kernels."""

import asyncio
import json
import time

import pytest

pytestmark = pytest.mark.slow


async def _clusters(jp_fetch):
    return json.loads((await jp_fetch("lepton", "api", "clusters")).body)["clusters"]


async def test_only_clusters_of_this_servers_kernels(
    jp_environ, jp_fetch, jp_serverapp, make_cluster
):
    loop = asyncio.get_running_loop()
    stranger = await loop.run_in_executor(None, lambda: make_cluster(n=1))
    assert stranger.collector.runtime_file  # in this server's runtime directory...

    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kid = json.loads(r.body)["id"]
    km = jp_serverapp.kernel_manager
    kc = km.get_kernel(kid).client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
        reply = await kc.execute_interactive(
            "%load_ext lepton_nb\n%lepton_cluster start -n 2 --gpus none", timeout=180
        )
        assert reply["content"]["status"] == "ok"
        deadline = time.monotonic() + 20
        while not (listed := await _clusters(jp_fetch)) or not listed[0]["ranks"]:
            assert time.monotonic() < deadline, "the kernel's cluster was not listed in 20 s"
            await asyncio.sleep(0.2)
        # ...but only the kernel's cluster is followed
        (mine,) = listed
        assert mine["cluster"] != stranger.cluster_id
        assert mine["kernel"] == km.get_kernel(kid).connection_file.rsplit("/", 1)[-1]
        assert mine["world_size"] == 2
        reply = await kc.execute_interactive("%lepton_cluster stop", timeout=120)
        assert reply["content"]["status"] == "ok"
        deadline = time.monotonic() + 10
        while await _clusters(jp_fetch):
            assert time.monotonic() < deadline, "the stopped cluster was still listed after 10 s"
            await asyncio.sleep(0.2)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(kid, now=True)
