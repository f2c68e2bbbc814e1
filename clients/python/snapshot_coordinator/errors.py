"""The coordinator's errors as exceptions, one class per gRPC status code, and finer classes for the
machine-readable reasons a caller acts on (PLAN_BUSY, HOLD_EXPIRED, ...).

Every error keeps what the status carried: the code, the details sentence, the ErrorInfo reason and
metadata (from the `snapshot-error-*` trailers) and, for INVALID_ARGUMENT, the field at fault (from
the google.rpc.BadRequest in `grpc-status-details-bin`; decoded here by hand, so that no
grpcio-status package is needed).
"""
from typing import Dict, List, Optional, Tuple

import grpc

_DETAILS_TRAILER = "grpc-status-details-bin"
_REASON_TRAILER = "snapshot-error-reason"
_METADATA_PREFIX = "snapshot-error-"


class CoordinatorError(Exception):
    """A call the coordinator refused or could not serve."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, code: grpc.StatusCode, details: str, reason: str = "", metadata: Optional[Dict[str, str]] = None, field: str = ""):
        super().__init__(details)
        self.code = code
        self.details = details
        #: The ErrorInfo reason (PLAN_BUSY, HOLD_EXPIRED, ...), or "".
        self.reason = reason
        #: The ErrorInfo metadata (plan_id, checkpoint_id, ...).
        self.metadata = metadata or {}
        #: INVALID_ARGUMENT: the request field at fault, as the .proto spells its path, or "".
        self.field = field

    def __str__(self) -> str:
        return "%s: %s" % (self.code.name, self.details)


class InvalidArgument(CoordinatorError):
    """The request is wrong: fix it (`field` names the field when one is at fault)."""


class NotFound(CoordinatorError):
    pass


class AlreadyExists(CoordinatorError):
    pass


class FailedPrecondition(CoordinatorError):
    """Refused: the request cannot succeed as things stand."""


class NotStaged(FailedPrecondition):
    """FinishCheckpoint of a checkpoint TakeSnapshot took."""


class NotHeld(FailedPrecondition):
    """FinishCheckpoint before the checkpoint is held."""


class HoldExpired(FailedPrecondition):
    """FinishCheckpoint after the hold deadline: the checkpoint aborted, its servers were released."""


class AlreadyFinished(FailedPrecondition):
    """A second FinishCheckpoint."""


class CheckpointAborted(FailedPrecondition):
    """The checkpoint aborted (BeginCheckpoint, FinishCheckpoint); the details say why."""


class ResourceExhausted(CoordinatorError):
    pass


class PlanBusy(ResourceExhausted):
    """Busy, not refused: the plan has max_concurrent checkpoints in flight. Retry later."""


class Aborted(CoordinatorError):
    """A concurrency conflict: retry at once."""


class Unavailable(CoordinatorError):
    """Retry with backoff."""


class DeadlineExceeded(CoordinatorError):
    pass


class Internal(CoordinatorError):
    pass


class Unauthenticated(CoordinatorError):
    """No credential, or one the coordinator does not accept (unknown, expired, malformed)."""


class PermissionDenied(CoordinatorError):
    """Authenticated, but the caller's role does not allow this call."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}

_BY_REASON = {
    "PLAN_BUSY": PlanBusy,
    "NOT_STAGED": NotStaged,
    "NOT_HELD": NotHeld,
    "HOLD_EXPIRED": HoldExpired,
    "ALREADY_FINISHED": AlreadyFinished,
    "CHECKPOINT_ABORTED": CheckpointAborted,
}


def from_rpc_error(e: grpc.RpcError) -> CoordinatorError:
    """The exception for a failed call (`e` as grpcio raises it)."""
    code = e.code() if callable(getattr(e, "code", None)) else grpc.StatusCode.UNKNOWN
    details = e.details() if callable(getattr(e, "details", None)) else str(e)
    trailers: List[Tuple[str, object]] = list(e.trailing_metadata() or ()) if callable(getattr(e, "trailing_metadata", None)) else []
    reason = ""
    metadata: Dict[str, str] = {}
    field = ""
    for key, value in trailers:
        if key == _REASON_TRAILER:
            reason = str(value)
        elif key == _DETAILS_TRAILER and isinstance(value, bytes):
            field = _first_field_violation(value)
        elif key.startswith(_METADATA_PREFIX):
            metadata[key[len(_METADATA_PREFIX):].replace("-", "_")] = str(value)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, CoordinatorError)
    # A reason of another code (a client older than the server) falls back to the code's class.
    if not issubclass(cls, _BY_CODE.get(code, CoordinatorError)):
        cls = _BY_CODE.get(code, CoordinatorError)
    return cls(code, details or "", reason, metadata, field)


# ---- the few protobuf wire rules google.rpc.Status and BadRequest need ------------------------------


def _fields(data: bytes):
    """(field number, wire type, value) of each field of a message; length-delimited values as bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i : i + n], i + n
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            return
        yield number, wire, value


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _first_field_violation(status: bytes) -> str:
    """The field of the first google.rpc.BadRequest field violation in a google.rpc.Status, or ""."""
    try:
        for number, wire, any_bytes in _fields(status):
            if number != 3 or wire != 2:
                continue
            parts = {n: v for n, w, v in _fields(any_bytes) if w == 2}
            if not bytes(parts.get(1, b"")).endswith(b"/google.rpc.BadRequest"):
                continue
            for n, w, violation in _fields(parts.get(2, b"")):
                if n == 1 and w == 2:
                    for fn, fw, fv in _fields(violation):
                        if fn == 1 and fw == 2:
                            return bytes(fv).decode("utf-8")
    except (IndexError, UnicodeDecodeError):
        return ""
    return ""
