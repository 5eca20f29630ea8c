"""The SigV4 signer reproduces AWS's published Signature Version 4 test suite (aws-sig-v4-test-suite:
credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatgate.providers.aws_sigv4 import AwsCredentials, sign

SUITE_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
SUITE_KEY = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0"
    "wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDryp"
    "NC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


@pytest.mark.parametrize(
    ("name", "method", "url", "headers", "body", "signed_headers", "signature"),
    [
        (
            "get-vanilla",
            "GET",
            "https://example.amazonaws.com/",
            {},
            b"",
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            "POST",
            "https://example.amazonaws.com/",
            {},
            b"",
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            {},
            b"",
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "get-header-value-trim",
            "GET",
            "https://example.amazonaws.com/",
            {"My-Header1": " value1", "My-Header2": ' "a   b   c"'},
            b"",
            "host;my-header1;my-header2;x-amz-date",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        ),
        (
            "post-x-www-form-urlencoded",
            "POST",
            "https://example.amazonaws.com/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Param1=value1",
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        ),
    ],
)
def test_published_vectors(
    name: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    signed_headers: str,
    signature: str,
) -> None:
    signed = sign(
        method,
        url,
        headers,
        body,
        credentials=SUITE_KEY,
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
    )
    assert signed.signature == signature, name
    assert signed.headers == {
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={signed_headers}, "
            f"Signature={signature}"
        ),
    }


def test_get_vanilla_intermediate_strings() -> None:
    signed = sign(
        "GET",
        "https://example.amazonaws.com/",
        {},
        b"",
        credentials=SUITE_KEY,
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
    )
    assert signed.canonical_request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )


def test_post_sts_header_before_signs_the_session_token() -> None:
    credentials = AwsCredentials(SUITE_KEY.access_key_id, SUITE_KEY.secret_access_key, SUITE_TOKEN)
    signed = sign(
        "POST",
        "https://example.amazonaws.com/",
        {},
        b"",
        credentials=credentials,
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
    )
    assert signed.headers["X-Amz-Security-Token"] == SUITE_TOKEN
    assert signed.headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={SCOPE}, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
    )


def test_encoded_path_is_encoded_again_and_port_is_part_of_the_host() -> None:
    signed = sign(
        "POST",
        "http://127.0.0.1:8123/model/anthropic.claude-v2%3A1/converse",
        {"Content-Type": "application/json"},
        b"{}",
        credentials=SUITE_KEY,
        region="eu-west-1",
        service="bedrock",
        now=SUITE_TIME,
    )
    lines = signed.canonical_request.split("\n")
    assert lines[1] == "/model/anthropic.claude-v2%253A1/converse"
    assert "host:127.0.0.1:8123" in lines
    assert SUITE_KEY.secret_access_key not in repr(signed)
    assert "/eu-west-1/bedrock/aws4_request" in signed.headers["Authorization"]
