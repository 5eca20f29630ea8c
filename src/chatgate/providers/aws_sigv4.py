"""AWS Signature Version 4 (header form), written against AWS's published algorithm.

Only what chatgate needs to call AWS JSON APIs: a request is signed in headers (``Authorization``,
``X-Amz-Date`` and, for temporary credentials, ``X-Amz-Security-Token``). The canonical URI is the
already-encoded request path encoded once more, as every service except S3 expects; this is why a
Bedrock model id with ``:`` travels as ``%3A`` and is signed as ``%253A``. Verified against the
AWS SigV4 test suite vectors (tests/providers/test_aws_sigv4.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair, plus the session token of temporary (STS) credentials."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over date, region, service and the terminator."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        return f"{host}:{parts.port}"
    return host


@dataclass(frozen=True, slots=True)
class Signed:
    """The headers to add to the request, and the intermediate strings (for tests and debugging:
    none of them contains the secret)."""

    headers: dict[str, str]
    canonical_request: str
    string_to_sign: str
    signature: str


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime | None = None,
) -> Signed:
    """Sign a request; ``headers`` are the headers to sign besides ``host`` and ``x-amz-date``.

    The caller sends ``body`` byte for byte and every header of ``headers`` and of the result.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    added = {"X-Amz-Date": amz_date}
    if credentials.session_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    to_sign: dict[str, list[str]] = {"host": [_host(url)]}
    for name, value in (*headers.items(), *added.items()):
        to_sign.setdefault(name.lower(), []).append(_SPACES.sub(" ", value.strip()))
    names = sorted(to_sign)
    canonical_headers = "".join(f"{n}:{','.join(to_sign[n])}\n" for n in names)
    signed_headers = ";".join(names)
    parts = urlsplit(url)
    canonical_uri = quote(parts.path or "/", safe="/-_.~")
    canonical_request = "\n".join(
        (
            method.upper(),
            canonical_uri,
            _canonical_query(parts.query),
            canonical_headers,
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    key = signing_key(credentials.secret_access_key, date, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Signed(added, canonical_request, string_to_sign, signature)
