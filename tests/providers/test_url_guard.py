"""The URL guard for caller-supplied upstream URLs: every refused address class, the operator's
allow-list, resolution pinned to the checked addresses, and redirects refused."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from chatgate.errors import ProviderConnectionError
from chatgate.providers.url_guard import (
    CheckedTarget,
    PinnedResolver,
    UpstreamPolicy,
    UpstreamRefused,
    check_url,
    pinned_session,
    refusal_reason,
    resolve_checked,
)

WHAT = "provider_api_keys.openai_azure_endpoint"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),  # the broadcast address, inside 240/4
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("::ffff:127.0.0.1", "loopback (inside the IPv6 address)"),
        ("::ffff:10.0.0.1", "private (inside the IPv6 address)"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:a00:1::", "private (inside the IPv6 address)"),  # 6to4 of 10.0.0.1
        ("fec0::1", "site-local"),
        ("192.0.2.1", "private"),  # documentation range (TEST-NET-1)
        ("198.18.0.1", "private"),  # benchmarking
    ],
)
def test_refused_address_classes(address: str, reason: str) -> None:
    found = refusal_reason(ipaddress.ip_address(address))
    assert found is not None and found.startswith(reason.split(" (")[0]), found
    assert reason in found


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "20.42.65.92", "100.128.0.1", "2001:4860:4860::8888", "::ffff:1.1.1.1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_check_url_needs_https_and_refuses_literals() -> None:
    policy = UpstreamPolicy()
    assert check_url("https://x.openai.azure.com/", policy, what=WHAT).host == "x.openai.azure.com"
    for url, fragment in [
        ("http://x.openai.azure.com", "must use https"),
        ("ftp://x.openai.azure.com", "must use https"),
        ("x.openai.azure.com", "absolute"),
        ("https://user:pw@x.openai.azure.com", "credentials"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]:8080", "loopback"),
    ]:
        with pytest.raises(UpstreamRefused) as caught:
            check_url(url, policy, what=WHAT)
        assert fragment in caught.value.message, (url, caught.value.message)
        assert caught.value.status == 400 and WHAT in caught.value.message


def test_allow_list_hosts_and_networks() -> None:
    policy = UpstreamPolicy.from_entries(["AOAI.internal.", "10.8.0.0/16", "fd00::/8", " "])
    assert policy.hosts == frozenset({"aoai.internal"})
    assert policy.allows_host("aoai.Internal")
    assert policy.allows_address(ipaddress.ip_address("10.8.3.4"))
    assert not policy.allows_address(ipaddress.ip_address("10.9.0.1"))
    assert policy.allows_address(ipaddress.ip_address("fd00::5"))
    assert check_url("http://aoai.internal:8080", policy, what=WHAT).scheme == "http"
    assert check_url("http://10.8.0.1", policy, what=WHAT).host == "10.8.0.1"
    with pytest.raises(UpstreamRefused):
        check_url("https://10.9.0.1", policy, what=WHAT)


def _resolve(url: str, policy: UpstreamPolicy) -> CheckedTarget:
    return asyncio.run(resolve_checked(URL(url), policy, what=WHAT, origin="x", dns_timeout=5))


def test_resolution_checks_every_address() -> None:
    with pytest.raises(UpstreamRefused) as caught:
        _resolve("https://localhost", UpstreamPolicy())
    assert "loopback" in caught.value.message and "CHATGATE_ALLOWED_UPSTREAM_HOSTS" in (
        caught.value.message
    )
    target = _resolve("https://localhost:9443", UpstreamPolicy.from_entries(["localhost"]))
    assert target.port == 9443 and {r["host"] for r in target.addresses} <= {"127.0.0.1", "::1"}
    target = _resolve("https://localhost", UpstreamPolicy.from_entries(["127.0.0.0/8", "::1/128"]))
    assert target.addresses
    with pytest.raises(UpstreamRefused) as caught:  # a numeric host the resolver reads as 127/8
        _resolve("https://0x7f000001", UpstreamPolicy())
    assert "127.0.0.1, a loopback" in caught.value.message
    with pytest.raises(ProviderConnectionError):
        _resolve("https://no-such-host.invalid", UpstreamPolicy())


def test_pinned_resolver_answers_only_the_checked_addresses() -> None:
    target = _resolve("https://localhost", UpstreamPolicy.from_entries(["localhost"]))
    resolver = PinnedResolver(target)
    answers = asyncio.run(resolver.resolve("localhost", 443, socket.AF_UNSPEC))
    assert answers == list(target.addresses)
    with pytest.raises(OSError):
        asyncio.run(resolver.resolve("evil.example", 443, socket.AF_UNSPEC))


async def _serve(routes: list[web.RouteDef]) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def test_pinned_session_connects_to_the_checked_address_and_refuses_redirects() -> None:
    async def scenario() -> dict[str, Any]:
        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"host": request.host})

        async def away(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect("http://169.254.169.254/latest/meta-data")

        runner, port = await _serve([web.post("/ok", ok), web.post("/away", away)])
        policy = UpstreamPolicy.from_entries(["localhost"])
        results: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession() as http:
                base = URL(f"http://localhost:{port}")
                async with (
                    pinned_session(http, base, policy, what=WHAT, origin="x") as session,
                    session.post(base / "ok") as response,
                ):
                    results["ok"] = await response.json()
                async with pinned_session(http, base, policy, what=WHAT, origin="x") as session:
                    try:
                        await session.post(base / "away")
                    except UpstreamRefused as exc:
                        results["redirect"] = exc.message
        finally:
            await runner.cleanup()
        return results

    results = asyncio.run(scenario())
    assert results["ok"]["host"].startswith("localhost:")
    assert "redirected to another host (169.254.169.254)" in results["redirect"]
