"""The one error tree. Code below the HTTP layer raises these; ``api/errors.py`` maps them, once.

::

    ChatgateError                 status, type, message, origin -> {"detail": {type, message, code, origin}}
    ├── InvalidRequest            422, rendered as the validation list {"detail": [{loc, msg, type}]}
    ├── BadRequest                400  (e.g. no key for a provider)
    ├── Unauthorized              401  (missing or unknown X-API-KEY)
    ├── NotFound                  404  (project, session, parent, log ... not in the organisation)
    ├── PayloadTooLarge           413  (body over CHATGATE_MAX_BODY_BYTES)
    ├── ClientGone                499  (hung up mid-request; answered to nobody, not logged)
    ├── NotImplementedByServer    501  (a v4 feature or provider this server does not offer yet)
    ├── ServiceUnavailable        503
    └── ProviderError             the provider's own status, origin = the provider
        ├── ProviderConnectionError   502
        └── ProviderTimeout           504
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ChatgateError(Exception):
    status: int = 500
    type: str = "internal_server_error"
    origin: str = "chatgate"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, object]:
        return {
            "detail": {
                "type": self.type,
                "message": self.message,
                "code": self.status,
                "origin": self.origin,
            }
        }


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One entry of a v4 validation error: where, what, and a machine-readable kind."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class InvalidRequest(ChatgateError):
    """A request that is well-formed JSON but semantically invalid (422, validation-list body)."""

    status = 422
    type = "unprocessable_entity_error"

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))
        self.problems = list(problems)

    @classmethod
    def at(cls, loc: tuple[str | int, ...], msg: str, type_: str = "value_error") -> InvalidRequest:
        return cls([FieldProblem(loc, msg, type_)])

    def body(self) -> dict[str, object]:
        return {
            "detail": [{"loc": list(p.loc), "msg": p.msg, "type": p.type} for p in self.problems]
        }


class BadRequest(ChatgateError):
    status = 400
    type = "bad_request_error"


class Unauthorized(ChatgateError):
    status = 401
    type = "unauthorized_error"


class NotFound(ChatgateError):
    status = 404
    type = "not_found_error"


class PayloadTooLarge(ChatgateError):
    status = 413
    type = "payload_too_large_error"


class ClientGone(ChatgateError):
    """The client hung up before its request was read; there is nobody to answer."""

    status = 499
    type = "client_closed_request"


class NotImplementedByServer(ChatgateError):
    status = 501
    type = "not_implemented_error"


class ServiceUnavailable(ChatgateError):
    status = 503
    type = "service_unavailable_error"


class DatabaseUnreachable(ServiceUnavailable):
    """The store could not reach its database (raised by ``Store.call``)."""


class DatabaseBusy(ServiceUnavailable):
    """No pooled database connection became free in time (raised by ``Store.call``)."""


class ValueRefused(BadRequest):
    """The database refused a value of the request (raised by ``Store.call``)."""


class ProviderError(ChatgateError):
    """The provider answered with an error; status and message are the provider's own."""

    type = "provider_error"

    def __init__(self, message: str, *, status: int, origin: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.origin = origin
        if kind:
            self.type = kind


class ProviderConnectionError(ProviderError):
    def __init__(self, message: str, *, origin: str) -> None:
        super().__init__(message, status=502, origin=origin, kind="provider_connection_error")


class ProviderTimeout(ProviderError):
    def __init__(self, message: str, *, origin: str) -> None:
        super().__init__(message, status=504, origin=origin, kind="provider_timeout_error")
