"""Provider keys go only to the endpoint they were configured for (through a real server).

The attack: a caller names its own endpoint in ``provider_api_keys.openai_azure_endpoint`` and
sends no key, hoping the server fills in its ``AZURE_OPENAI_API_KEY`` or the organisation's saved
key. Two fake Azure resources play the legitimate endpoint and the caller's; the caller's fake
records every request it receives, so "no key reached it" is observed, not assumed. Loopback is
allow-listed for the URL guard so that the caller's endpoint is reachable at all: without the key
rule, the key would arrive there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from chatgate.services.credentials import fernet_for, load_or_create_secret, save_provider_key
from tests.api.test_streaming import parse_frames
from tests.conftest import RunningServer, UvicornThread, backend_url, start_server
from tests.fakes._serving import BackgroundServer
from tests.fakes.azure_server import FakeAzure
from tests.fakes.openai_server import FakeOpenAI

SERVER_KEY = "azure-server-key-0123456789abcdef"
SAVED_KEY = "azure-saved-key-fedcba9876543210"
CALLER_KEY = "azure-caller-key-5555555555555555"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeAzure, FakeAzure, FakeAzure]]:
    operator, organisation, caller = FakeAzure().start(), FakeAzure().start(), FakeAzure().start()
    yield operator, organisation, caller
    for fake in (operator, organisation, caller):
        fake.stop()


@pytest.fixture
def azures(
    fakes: tuple[FakeAzure, FakeAzure, FakeAzure],
) -> tuple[FakeAzure, FakeAzure, FakeAzure]:
    for fake in fakes:
        fake.reset()
    return fakes


def _start(
    tmp_path: Path, request: pytest.FixtureRequest, operator: FakeAzure
) -> tuple[UvicornThread, RunningServer]:
    database_url = backend_url(request)
    env = {"AZURE_OPENAI_ENDPOINT": operator.url, "AZURE_OPENAI_API_KEY": SERVER_KEY}
    return start_server(
        tmp_path,
        "",
        database_url=database_url,
        vendor_env=env,
        allowed_upstream_hosts=["127.0.0.0/8"],
        provider_max_retries=0,
    )


@pytest.fixture
def server(
    tmp_path: Path, request: pytest.FixtureRequest, azures: tuple[FakeAzure, FakeAzure, FakeAzure]
) -> Iterator[RunningServer]:
    runner, running = _start(tmp_path, request, azures[0])
    with runner:
        yield running


def body(keys: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "project": "keys",
        "model_config": {"provider": "openai_azure", "model": "dep"},
        "messages": [{"role": "user", "content": "hello"}],
        **({"provider_api_keys": keys} if keys is not None else {}),
        **extra,
    }


def _save_org_key(server: RunningServer, org: str, endpoint: str | None) -> None:
    store = server.store()
    try:
        org_id = store.orgs.org_id_by_name(org)
        assert org_id is not None
        fernet = fernet_for(load_or_create_secret(server.settings))
        save_provider_key(store, fernet, org_id, "openai_azure", SAVED_KEY, endpoint)
    finally:
        store.close()


def _refused(response: Any) -> None:
    assert response.status_code == 400, response.text
    message = response.json()["detail"]["message"]
    assert "openai_azure_endpoint is used only with a key sent in the same request" in message


def _keys_seen(fake: FakeAzure) -> list[str | None]:
    return [r.headers.get("api-key") for r in fake.requests]


def test_the_servers_key_never_goes_to_a_callers_endpoint(
    server: RunningServer, azures: tuple[FakeAzure, FakeAzure, FakeAzure]
) -> None:
    operator, _, caller = azures
    for stream in (False, True):
        _refused(server.post_chat(body({"openai_azure_endpoint": caller.url}, stream=stream)))
    assert caller.requests == [] and operator.requests == []
    # Without the endpoint, the server's key goes to the server's endpoint, as configured;
    # naming that same endpoint explicitly is allowed too.
    assert server.post_chat(body()).status_code == 200
    assert server.post_chat(body({"openai_azure_endpoint": operator.url + "/"})).status_code == 200
    assert _keys_seen(operator) == [SERVER_KEY, SERVER_KEY]


def test_a_saved_key_goes_only_to_its_saved_endpoint(
    server: RunningServer, azures: tuple[FakeAzure, FakeAzure, FakeAzure]
) -> None:
    operator, organisation, caller = azures
    _save_org_key(server, "acme", organisation.url)
    for stream in (False, True):
        _refused(server.post_chat(body({"openai_azure_endpoint": caller.url}, stream=stream)))
    # Neither the saved key nor the server's reached the caller's host.
    assert caller.requests == [] and operator.requests == []
    assert server.post_chat(body()).status_code == 200
    assert _keys_seen(organisation) == [SAVED_KEY]
    # Another organisation has no saved key: it gets the server's key at the server's endpoint,
    # never acme's key.
    assert server.post_chat(body(), key=server.key_b).status_code == 200
    assert _keys_seen(operator) == [SERVER_KEY]


def test_a_saved_key_without_an_endpoint_goes_to_the_configured_one(
    server: RunningServer, azures: tuple[FakeAzure, FakeAzure, FakeAzure]
) -> None:
    operator, _, caller = azures
    _save_org_key(server, "acme", None)
    _refused(server.post_chat(body({"openai_azure_endpoint": caller.url})))
    assert caller.requests == []
    assert server.post_chat(body()).status_code == 200
    assert _keys_seen(operator) == [SAVED_KEY]


def test_a_callers_own_key_may_go_to_its_own_endpoint(
    server: RunningServer, azures: tuple[FakeAzure, FakeAzure, FakeAzure]
) -> None:
    operator, organisation, caller = azures
    _save_org_key(server, "acme", organisation.url)
    keys = {"openai_azure_endpoint": caller.url, "openai_azure": CALLER_KEY}
    assert server.post_chat(body(keys)).status_code == 200
    frames, _ = parse_frames(server.post_chat(body(keys, stream=True)).content)
    assert frames[-1]["data"][0]["finish_reason"] == "stop"
    assert _keys_seen(caller) == [CALLER_KEY, CALLER_KEY]
    # A caller's own key without an endpoint goes to the organisation's saved endpoint.
    assert server.post_chat(body({"openai_azure": CALLER_KEY})).status_code == 200
    assert _keys_seen(organisation) == [CALLER_KEY]
    assert operator.requests == []


class Redirector:
    """An upstream that answers every call with a redirect to ``target`` (307 keeps the POST)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls = 0

    def start(self) -> Redirector:
        async def redirect(request: web.Request) -> web.Response:
            self.calls += 1
            raise web.HTTPTemporaryRedirect(self.target + request.path_qs)

        def routes(app: web.Application) -> None:
            app.router.add_route("*", "/{tail:.*}", redirect)

        self._server = BackgroundServer(routes, "redirector")
        self.url = f"http://127.0.0.1:{self._server.start()}"
        return self


@pytest.mark.parametrize("provider", ["openai", "openai_azure"])
def test_no_key_follows_a_redirect(
    tmp_path: Path, azures: tuple[FakeAzure, FakeAzure, FakeAzure], provider: str
) -> None:
    """A configured endpoint that redirects elsewhere: the key headers (``Authorization``,
    ``api-key``) must not be re-sent to the redirect's target."""
    _, _, elsewhere = azures
    openai_elsewhere = FakeOpenAI().start()
    target = (
        elsewhere.url if provider == "openai_azure" else openai_elsewhere.url.removesuffix("/v1")
    )
    redirector = Redirector(target).start()
    env = {
        "AZURE_OPENAI_ENDPOINT": redirector.url,
        "AZURE_OPENAI_API_KEY": SERVER_KEY,
        "OPENAI_BASE_URL": redirector.url + "/v1",
        "OPENAI_API_KEY": SERVER_KEY,
    }
    runner, running = start_server(tmp_path, "", vendor_env=env, provider_max_retries=0)
    try:
        with runner:
            payload = body()
            payload["model_config"]["provider"] = provider
            for stream in (False, True):
                response = running.post_chat({**payload, "stream": stream})
                assert response.status_code == 502, response.text
                detail = response.json()["detail"]
                assert detail["type"] == "provider_redirect_error"
                assert "redirect" in detail["message"]
    finally:
        redirector._server.stop()
        openai_elsewhere.stop()
    assert redirector.calls == 2
    assert elsewhere.requests == [] and openai_elsewhere.requests == []
