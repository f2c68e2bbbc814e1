"""A Python client of the snapshot coordinator's gRPC API: `Client`, the exceptions by status and
reason, and the helpers that build durations, timestamps and options. The proto messages are the
generated ones: `from snapshot.v1 import coordinator_pb2 as pb`."""
from .client import Client, Staged, VolumeSnapshot, duration, level_of, snapshot_options, timestamp
from .errors import (
    Aborted,
    AlreadyExists,
    AlreadyFinished,
    CheckpointAborted,
    CoordinatorError,
    DeadlineExceeded,
    FailedPrecondition,
    HoldExpired,
    Internal,
    InvalidArgument,
    NotFound,
    NotHeld,
    NotStaged,
    PlanBusy,
    ResourceExhausted,
    Unavailable,
)

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AlreadyFinished",
    "CheckpointAborted",
    "Client",
    "CoordinatorError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "HoldExpired",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "NotHeld",
    "NotStaged",
    "PlanBusy",
    "ResourceExhausted",
    "Staged",
    "Unavailable",
    "VolumeSnapshot",
    "duration",
    "level_of",
    "snapshot_options",
    "timestamp",
]
