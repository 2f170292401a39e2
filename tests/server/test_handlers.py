"""Every route of the extension refuses an unauthenticated request and serves a token holder."""

import json

import pytest
import tornado.httpclient

NO_TOKEN = {"Authorization": ""}
ROUTES = [("lepton", "api", "clusters"), ("lepton", "metrics")]


@pytest.fixture(params=[True, False], ids=["default", "no-unauthenticated-access"])
def allow_unauthenticated_access(request):
    return request.param


@pytest.mark.parametrize("route", ROUTES, ids="/".join)
async def test_http_routes_need_a_token(jp_fetch, route):
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await jp_fetch(*route, headers=NO_TOKEN)
    assert e.value.code == 403
    r = await jp_fetch(*route)
    assert r.code == 200


async def test_websocket_needs_a_token(jp_ws_fetch):
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await jp_ws_fetch("lepton", "api", "metrics", headers=NO_TOKEN)
    assert e.value.code == 403
    ws = await jp_ws_fetch("lepton", "api", "metrics")
    hello = json.loads(await ws.read_message())
    assert hello == {"type": "hello", "clusters": []}
    ws.close()


async def test_empty_answers(jp_fetch):
    r = await jp_fetch("lepton", "api", "clusters")
    assert json.loads(r.body) == {"clusters": []}
    r = await jp_fetch("lepton", "metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    assert "lepton_clusters 0.0" in r.body.decode()


async def test_the_extension_is_loaded(jp_serverapp):
    assert "lepton_nb.server" in jp_serverapp.extension_manager.extensions
    assert jp_serverapp.extension_manager.extensions["lepton_nb.server"].enabled
