"""The guard for upstream URLs a *caller* supplies (``provider_api_keys.openai_azure_endpoint``).

A URL from the request decides where this server connects. Unchecked, any caller could make it
reach the cloud metadata service (169.254.169.254), the database next door or loopback admin
ports (server-side request forgery). So a caller-supplied URL must be ``https``, and its host is
resolved here and **every** address it resolves to must be public: loopback, private (RFC 1918,
fc00::/7), link-local (169.254/16, fe80::/10), unspecified, multicast, reserved, CGNAT
(100.64/10), and anything else not globally routable are refused — also when hidden in an
IPv4-mapped (``::ffff:10.0.0.1``), 6to4 or Teredo address. The refusal is a 400 naming the
address and why.

The operator can allow hosts (exact names) or networks (CIDRs) with
``CHATGATE_ALLOWED_UPSTREAM_HOSTS``; an allowed host or an address inside an allowed network
passes, and plain ``http`` is then accepted too (an internal gateway without TLS).

DNS rebinding: a check is worthless if the connection resolves the name again and gets another
answer. The call is therefore made through :func:`pinned_session`, whose connector's resolver
returns exactly the addresses that were checked (no second lookup), and whose middleware refuses
any request — a redirect included — to another host. URLs from the operator's own configuration
(environment variables, named providers) never pass through here: they are trusted as configured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from chatgate.errors import BadRequest, ProviderConnectionError
from chatgate.providers.base import ProviderSpec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Address classes refused, checked in order; the first that matches names the reason.
#: (``is_global`` catches the remaining special-purpose ranges: documentation, benchmarking ...)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_CLASSES: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local (cloud metadata lives there)"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


class UpstreamRefused(BadRequest):
    """A caller-supplied URL this server will not connect to (400, origin chatgate)."""

    type = "upstream_url_refused"


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None if it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = (
            address.ipv4_mapped
            or address.sixtofour
            or (address.teredo[1] if address.teredo else None)
        )
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"{inner} (inside the IPv6 address)" if inner else None
        if address.is_site_local:
            return "site-local"
    elif address in _CGNAT:
        return "carrier-grade NAT (100.64.0.0/10)"
    for attribute, reason in _CLASSES:
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    """The operator's allow-list: host names (exact, case-insensitive) and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> UpstreamPolicy:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


@dataclass(frozen=True, slots=True)
class CallerURLSpec(ProviderSpec):
    """A registry row whose base URL a caller may supply (then guarded by :class:`UpstreamPolicy`).

    ``endpoint_key`` names the ``provider_api_keys`` entry that carries it.
    """

    endpoint_key: str | None = None
    upstream_policy: UpstreamPolicy = field(default_factory=UpstreamPolicy)


def caller_base_url(spec: ProviderSpec, provider_api_keys: Mapping[str, Any] | None) -> str | None:
    """The base URL the request supplies for this provider, if the row accepts one."""
    if not isinstance(spec, CallerURLSpec) or spec.endpoint_key is None:
        return None
    value = (provider_api_keys or {}).get(spec.endpoint_key)
    return value if isinstance(value, str) and value else None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def host_name_problem(host: str) -> str | None:
    """Why ``host`` (ASCII, IDNA already applied) is no DNS name that can be looked up, or None.

    The resolver would fail on these too, but later and as a connection error (a 502): a name
    over 253 characters, an empty label or one over 63, characters a host name cannot have.
    Underscores pass: some internal names have them and resolvers take them.
    """
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        return "it is longer than 253 characters"
    for label in name.split("."):
        if not label:
            return "it has an empty label"
        if len(label) > 63:
            return "a label is longer than 63 characters"
        if not _HOST_CHARACTERS.issuperset(label):
            return "only letters, digits, '-' and '_' may make up a label"
        if label.startswith("-") or label.endswith("-"):
            return "a label starts or ends with '-'"
    return None


def check_url(url: str, policy: UpstreamPolicy, *, what: str) -> URL:
    """The checks that need no DNS: a parseable absolute URL, https, a host name that can be
    looked up, an IP literal's class.

    ``what`` names the URL in messages (``provider_api_keys.openai_azure_endpoint``).
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise UpstreamRefused(f"{what} is not a valid URL") from None
    host = parsed.host
    if not parsed.absolute or not host:
        raise UpstreamRefused(f"{what} must be an absolute https:// URL")
    if parsed.user is not None or parsed.password is not None:
        raise UpstreamRefused(f"{what} must not carry credentials in the URL")
    literal = _literal(host)
    if literal is None and (problem := host_name_problem(parsed.raw_host or host)) is not None:
        raise UpstreamRefused(f"{what} has no valid host name: {problem}")
    allowed = policy.allows_host(host) or (literal is not None and policy.allows_address(literal))
    if parsed.scheme != "https" and not (parsed.scheme == "http" and allowed):
        raise UpstreamRefused(f"{what} must use https (got '{parsed.scheme}')")
    if literal is not None and not allowed:
        reason = refusal_reason(literal)
        if reason:
            raise UpstreamRefused(f"{what} points to {literal}, a {reason} address; refused")
    return parsed


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A host and the addresses it resolved to, every one of them checked."""

    host: str
    port: int
    addresses: tuple[ResolveResult, ...]


async def resolve_checked(
    url: URL, policy: UpstreamPolicy, *, what: str, origin: str, dns_timeout: float | None
) -> CheckedTarget:
    """Resolve ``url``'s host once and check every address (see the module docstring)."""
    host = url.host or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:  # aiohttp connects to a literal without resolving; checked already
        return CheckedTarget(host, port, ())
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), dns_timeout
        )
    except (OSError, TimeoutError) as exc:
        raise ProviderConnectionError(
            f"could not resolve the host of {what} ({host}): {exc}", origin=origin
        ) from None
    host_allowed = policy.allows_host(host)
    results: list[ResolveResult] = []
    for family, _, proto, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not host_allowed and not policy.allows_address(address):
            reason = refusal_reason(address)
            if reason:
                raise UpstreamRefused(
                    f"{what} resolves to {address}, a {reason} address; refused "
                    "(an operator can allow it with CHATGATE_ALLOWED_UPSTREAM_HOSTS)"
                )
        results.append(
            ResolveResult(
                hostname=host,
                host=str(sockaddr[0]),
                port=port,
                family=family,
                proto=proto,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        )
    if not results:
        raise ProviderConnectionError(f"{what} ({host}) has no address", origin=origin)
    return CheckedTarget(host, port, tuple(results))


class PinnedResolver(AbstractResolver):
    """Answers with the checked addresses only: the connection cannot be rebound elsewhere."""

    def __init__(self, target: CheckedTarget) -> None:
        self._target = target

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._target.host or not self._target.addresses:
            raise OSError(f"{host} is not the checked upstream host")
        return [
            result
            for result in self._target.addresses
            if family == socket.AF_UNSPEC or result["family"] == family
        ]

    async def close(self) -> None:
        return None


def _same_origin_only(url: URL, what: str) -> aiohttp.ClientMiddlewareType:
    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if (request.url.scheme, request.url.host, request.url.port) != (
            url.scheme,
            url.host,
            url.port,
        ):
            raise UpstreamRefused(f"{what} redirected to another host ({request.url.host})")
        return await handler(request)

    return middleware


@asynccontextmanager
async def pinned_session(
    http: aiohttp.ClientSession, url: URL, policy: UpstreamPolicy, *, what: str, origin: str
) -> AsyncIterator[aiohttp.ClientSession]:
    """A session for one call to a caller-supplied URL, connecting only to checked addresses.

    It is created per call (a pooled connection would outlive the check it was made under); its
    timeouts are the shared session's.
    """
    target = await resolve_checked(
        url, policy, what=what, origin=origin, dns_timeout=http.timeout.sock_connect
    )
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(target), use_dns_cache=False, limit=0, force_close=True
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=http.timeout,
        raise_for_status=False,
        middlewares=(_same_origin_only(url, what),),
    ) as session:
        yield session
