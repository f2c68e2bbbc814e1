"""A thin, idiomatic wrapper of the snapshot.v1.Coordinator stubs: one method per call, the proto
messages as they are (times are Timestamps: `.ToDatetime()`), exceptions by status code and reason
(errors.py), iterators over pages and progress streams, a take that waits with a progress
callback, and a staged checkpoint as a context manager.
"""
import datetime
import os
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Union

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from snapshot.v1 import coordinator_pb2 as pb
from snapshot.v1 import coordinator_pb2_grpc as rpc

from .errors import CheckpointAborted, CoordinatorError, from_rpc_error

Seconds = Union[float, int, datetime.timedelta]
#: A PEM credential: the file's path, or its bytes.
Pem = Union[str, os.PathLike, bytes]
DEFAULT_ADDRESS = "127.0.0.1:50051"
Instant = Union[datetime.datetime, float, int]

_LEVELS = {"none": pb.CONSISTENCY_LEVEL_NONE, "crash": pb.CONSISTENCY_LEVEL_CRASH, "app": pb.CONSISTENCY_LEVEL_APP}
_FINAL = (pb.CHECKPOINT_STATE_COMPLETED, pb.CHECKPOINT_STATE_ABORTED)


def duration(value: Seconds) -> Duration:
    """A Duration from seconds or a timedelta."""
    d = Duration()
    d.FromTimedelta(value if isinstance(value, datetime.timedelta) else datetime.timedelta(seconds=value))
    return d


def timestamp(value: Instant) -> Timestamp:
    """A Timestamp from an aware datetime or Unix seconds (naive datetimes are refused: their zone is unknown)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no time zone: use datetime.now(timezone.utc)")
        value = value.timestamp()
    t = Timestamp()
    t.FromMilliseconds(int(round(value * 1000)))
    return t


def _pem(value: Optional[Pem], what: str) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("cannot read the %s file %s: %s" % (what, value, e.strerror)) from None


def level_of(level: Union[str, int]) -> int:
    """A ConsistencyLevel from "none", "crash", "app" or the enum value itself."""
    if isinstance(level, str):
        try:
            return _LEVELS[level.lower()]
        except KeyError:
            raise ValueError("level must be one of %s, got %r" % (", ".join(_LEVELS), level)) from None
    return level


def snapshot_options(
    timeout: Optional[Seconds] = None,
    alignment_timeout: Optional[Seconds] = None,
    unaligned: bool = False,
    downgrade: bool = False,
    freeze_deadline: Optional[Seconds] = None,
    max_concurrent: int = 0,
) -> pb.SnapshotOptions:
    """SnapshotOptions; what is left out takes the coordinator's default."""
    o = pb.SnapshotOptions(max_concurrent=max_concurrent)
    if timeout is not None:
        o.timeout.CopyFrom(duration(timeout))
    if alignment_timeout is not None:
        o.alignment_timeout.CopyFrom(duration(alignment_timeout))
    if unaligned:
        o.alignment_mode = pb.ALIGNMENT_MODE_UNALIGNED
    if downgrade:
        o.fallback_policy = pb.FALLBACK_POLICY_DOWNGRADE
    if freeze_deadline is not None:
        o.freeze_deadline.CopyFrom(duration(freeze_deadline))
    return o


class VolumeSnapshot:
    """A volume snapshot the caller took while a staged checkpoint was held."""

    def __init__(self, volume_id: str, server: str, snapshot_ref: str, started_at: Instant, ended_at: Instant):
        self.volume_id = volume_id
        self.server = server
        self.snapshot_ref = snapshot_ref
        self.started_at = started_at
        self.ended_at = ended_at

    def to_proto(self) -> pb.GivenVolumeSnapshot:
        return pb.GivenVolumeSnapshot(
            volume_id=self.volume_id,
            server=self.server,
            snapshot_ref=self.snapshot_ref,
            started_at=timestamp(self.started_at),
            ended_at=timestamp(self.ended_at),
        )


class Client:
    """A connection to a coordinator. Use it as a context manager, or call close().

    `address` is one coordinator, or several comma-separated ("a:50051,b:50051": a leader and its
    standbys, docs/ha.md): a unary call answered UNAVAILABLE by one (a standby's NOT_LEADER, or one
    that cannot be reached) is made on the next, and the one that answered stays the first choice.
    `timeout` (seconds) bounds every unary call; BeginCheckpoint and FinishCheckpoint wait on the
    agents and get `wait_timeout`, and streams (watch, take_and_wait) get `stream_timeout`.
    """

    def __init__(
        self,
        address: str,
        timeout: float = 10.0,
        wait_timeout: float = 120.0,
        stream_timeout: float = 3600.0,
        channel: Optional[grpc.Channel] = None,
        token: Optional[str] = None,
        ca: Optional[Pem] = None,
        cert: Optional[Pem] = None,
        key: Optional[Pem] = None,
    ):
        addresses = [a.strip() for a in address.split(",")]
        if channel is None and any(a == "" for a in addresses):
            raise ValueError("address %r has an empty entry" % address)
        if token is not None and (token == "" or any(c.isspace() for c in token)):
            raise ValueError("token must be a non-empty string without white space")
        if (cert is None) != (key is None):
            raise ValueError("cert and key go together: a client certificate needs its private key")
        secure = ca is not None or cert is not None
        if channel is not None and secure:
            raise ValueError("ca, cert and key are for the channels the client makes; a given channel has its own credentials")
        if channel is not None:
            self._channels = [channel]
        elif secure:
            tls = grpc.ssl_channel_credentials(
                root_certificates=_pem(ca, "ca"),
                private_key=_pem(key, "key"),
                certificate_chain=_pem(cert, "cert"),
            )
            self._channels = [grpc.secure_channel(a, tls) for a in addresses]
        else:
            self._channels = [grpc.insecure_channel(a) for a in addresses]
        self._own_channel = channel is None
        self._stubs = [rpc.CoordinatorStub(c) for c in self._channels]
        self._current = 0
        # Sent as call metadata rather than as call credentials: grpcio attaches call credentials
        # only to TLS channels, and a coordinator may authenticate without TLS (docs/security.md).
        self._metadata = (("authorization", "Bearer " + token),) if token is not None else None
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.stream_timeout = stream_timeout

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **kwargs) -> "Client":
        """A client configured as snapctl is: $SNAPCTL_ADDRESS (default 127.0.0.1:50051),
        $SNAPCTL_TOKEN, and the PEM files $SNAPCTL_CA, $SNAPCTL_CERT and $SNAPCTL_KEY; keyword
        arguments win over the environment."""
        env = os.environ if environ is None else environ
        settings = {"address": env.get("SNAPCTL_ADDRESS") or DEFAULT_ADDRESS}
        for name in ("token", "ca", "cert", "key"):
            value = env.get("SNAPCTL_" + name.upper())
            if value:
                settings[name] = value
        settings.update(kwargs)
        return cls(**settings)

    @property
    def _channel(self) -> grpc.Channel:
        return self._channels[self._current]

    @property
    def _stub(self):
        return self._stubs[self._current]

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._own_channel:
            for c in self._channels:
                c.close()

    def _call(self, method: str, request, timeout: Optional[float] = None):
        first = self._current
        for turn in range(len(self._stubs)):
            i = (first + turn) % len(self._stubs)
            try:
                answer = getattr(self._stubs[i], method)(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and turn + 1 < len(self._stubs):
                    continue
                raise from_rpc_error(e) from None
            self._current = i
            return answer

    def _stream(self, method: str, request) -> Iterator:
        try:
            for message in getattr(self._stub, method)(request, timeout=self.stream_timeout, metadata=self._metadata):
                yield message
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # ---- plans ------------------------------------------------------------------------------------

    def register_plan(self, plan: pb.Plan, expected_revision: int = 0) -> pb.Plan:
        return self._call("RegisterPlan", pb.RegisterPlanRequest(plan=plan, expected_revision=expected_revision)).plan

    def get_plan(self, plan_id: str) -> pb.Plan:
        return self._call("GetPlan", pb.GetPlanRequest(plan_id=plan_id)).plan

    def plans(self, tenant: str = "", page_size: int = 0) -> Iterator[pb.Plan]:
        """Every plan (of a tenant), fetching page after page as the iteration goes."""
        token = ""
        while True:
            page = self._call("ListPlans", pb.ListPlansRequest(tenant=tenant, page_size=page_size, page_token=token))
            yield from page.plans
            token = page.next_page_token
            if not token:
                return

    def delete_plan(self, plan_id: str, delete_checkpoints: bool = False) -> None:
        self._call("DeletePlan", pb.DeletePlanRequest(plan_id=plan_id, delete_checkpoints=delete_checkpoints))

    # ---- checkpoints ------------------------------------------------------------------------------

    def take(self, plan_id: str, level: Union[str, int] = "app", options: Optional[pb.SnapshotOptions] = None, idempotency_key: str = "") -> pb.Checkpoint:
        """TakeSnapshot: returns once the checkpoint is accepted (PlanBusy when the plan is busy)."""
        request = pb.TakeSnapshotRequest(plan_id=plan_id, level=level_of(level), options=options or pb.SnapshotOptions(), idempotency_key=idempotency_key)
        return self._call("TakeSnapshot", request).checkpoint

    def take_and_wait(
        self,
        plan_id: str,
        level: Union[str, int] = "app",
        options: Optional[pb.SnapshotOptions] = None,
        idempotency_key: str = "",
        on_progress: Optional[Callable[[pb.TakeSnapshotAndWaitResponse], None]] = None,
    ) -> pb.Checkpoint:
        """TakeSnapshotAndWait: the completed checkpoint, each progress event passed to `on_progress`
        on the way; CheckpointAborted (with `.checkpoint`) when it aborted."""
        request = pb.TakeSnapshotAndWaitRequest(plan_id=plan_id, level=level_of(level), options=options or pb.SnapshotOptions(), idempotency_key=idempotency_key)
        last = None
        for event in self._stream("TakeSnapshotAndWait", request):
            last = event.checkpoint
            if on_progress is not None:
                on_progress(event)
        return _final(last)

    def watch(self, checkpoint_id: int) -> Iterator[pb.WatchCheckpointResponse]:
        """WatchCheckpoint: progress events until the checkpoint ends (the last carries the final record)."""
        return self._stream("WatchCheckpoint", pb.WatchCheckpointRequest(checkpoint_id=checkpoint_id))

    def wait(self, checkpoint_id: int) -> pb.Checkpoint:
        """Follows a checkpoint to its end: the completed record, or CheckpointAborted."""
        last = None
        for event in self.watch(checkpoint_id):
            last = event.checkpoint
        return _final(last)

    def get_checkpoint(self, checkpoint_id: int) -> pb.Checkpoint:
        return self._call("GetCheckpoint", pb.GetCheckpointRequest(checkpoint_id=checkpoint_id)).checkpoint

    def checkpoints(self, plan_id: str = "", states: Sequence[int] = (), page_size: int = 0) -> Iterator[pb.Checkpoint]:
        """Every checkpoint (of a plan, in these states), newest first, page after page."""
        token = ""
        while True:
            page = self._call("ListCheckpoints", pb.ListCheckpointsRequest(plan_id=plan_id, states=list(states), page_size=page_size, page_token=token))
            yield from page.checkpoints
            token = page.next_page_token
            if not token:
                return

    def cancel(self, checkpoint_id: int, idempotency_key: str = "") -> pb.Checkpoint:
        return self._call("CancelCheckpoint", pb.CancelCheckpointRequest(checkpoint_id=checkpoint_id, idempotency_key=idempotency_key)).checkpoint

    def delete(self, checkpoint_id: int, idempotency_key: str = "") -> pb.DeleteCheckpointResponse:
        return self._call("DeleteCheckpoint", pb.DeleteCheckpointRequest(checkpoint_id=checkpoint_id, idempotency_key=idempotency_key))

    def pin(self, checkpoint_id: int, pinned: bool = True) -> pb.Checkpoint:
        if pinned:
            return self._call("PinCheckpoint", pb.PinCheckpointRequest(checkpoint_id=checkpoint_id)).checkpoint
        return self._call("UnpinCheckpoint", pb.UnpinCheckpointRequest(checkpoint_id=checkpoint_id)).checkpoint

    def verify(self, checkpoint_id: int) -> pb.VerifyCheckpointResponse:
        return self._call("VerifyCheckpoint", pb.VerifyCheckpointRequest(checkpoint_id=checkpoint_id))

    def rollback(self, checkpoint_id: int, skip_safety_checkpoint: bool = False, idempotency_key: str = "") -> pb.RollbackSnapshotResponse:
        """RollbackSnapshot: the plan put back to a completed checkpoint (waits on the agents)."""
        request = pb.RollbackSnapshotRequest(checkpoint_id=checkpoint_id, skip_safety_checkpoint=skip_safety_checkpoint, idempotency_key=idempotency_key)
        return self._call("RollbackSnapshot", request, self.wait_timeout)

    def restore(
        self,
        checkpoint_id: int,
        servers: Optional[Dict[str, str]] = None,
        idempotency_key: str = "",
        from_site: str = "",
        source_site: str = "",
    ) -> pb.RestoreSnapshotResponse:
        """RestoreSnapshot: a completed checkpoint put into other servers, `servers` mapping each of its
        servers to a target (waits on the agents). With `from_site`, from the copy that site holds
        (docs/sites.md): `checkpoint_id` is then the id at the source deployment, and the answer's
        restored_checkpoint_id the copy imported here."""
        request = pb.RestoreSnapshotRequest(
            checkpoint_id=checkpoint_id,
            servers=[pb.ServerMapping(source_server=k, target_server=v) for k, v in sorted((servers or {}).items())],
            idempotency_key=idempotency_key,
            from_site=from_site,
            source_site=source_site,
        )
        return self._call("RestoreSnapshot", request, self.wait_timeout)

    def copy(self, checkpoint_id: int, site: str) -> pb.CheckpointCopy:
        """CopyCheckpoint: the checkpoint copied to a configured site and verified there by digest."""
        return self._call("CopyCheckpoint", pb.CopyCheckpointRequest(checkpoint_id=checkpoint_id, site=site), self.wait_timeout).copy

    def copies(self, site: str, plan_id: str = "") -> Sequence[pb.SiteCopy]:
        """ListCheckpointCopies: the copies a site holds, with their source."""
        return self._call("ListCheckpointCopies", pb.ListCheckpointCopiesRequest(site=site, plan_id=plan_id)).copies

    def agents(self, tenant: str = "") -> Sequence[pb.Agent]:
        return self._call("ListAgents", pb.ListAgentsRequest(tenant=tenant)).agents

    # ---- staged checkpoints -----------------------------------------------------------------------

    def begin(self, plan_id: str, level: Union[str, int] = "crash", hold_deadline: Optional[Seconds] = None, options: Optional[pb.SnapshotOptions] = None, idempotency_key: str = "") -> pb.Checkpoint:
        """BeginCheckpoint: returns the HELD checkpoint (every server frozen, or every app holding)."""
        request = pb.BeginCheckpointRequest(plan_id=plan_id, level=level_of(level), options=options or pb.SnapshotOptions(), idempotency_key=idempotency_key)
        if hold_deadline is not None:
            request.hold_deadline.CopyFrom(duration(hold_deadline))
        return self._call("BeginCheckpoint", request, self.wait_timeout).checkpoint

    def finish(self, checkpoint_id: int, volumes: Iterable[VolumeSnapshot] = ()) -> pb.Checkpoint:
        """FinishCheckpoint: the COMPLETED checkpoint, with the caller's snapshots in caller_volumes."""
        request = pb.FinishCheckpointRequest(checkpoint_id=checkpoint_id, volumes=[v.to_proto() for v in volumes])
        return self._call("FinishCheckpoint", request, self.wait_timeout).checkpoint

    def staged(self, plan_id: str, level: Union[str, int] = "crash", hold_deadline: Optional[Seconds] = None, options: Optional[pb.SnapshotOptions] = None, idempotency_key: str = "") -> "Staged":
        """A staged checkpoint as a context manager: begun on entry; call `.finish(volumes)` inside; an
        exception (or leaving without a finish) cancels it, so the servers are thawed at once."""
        return Staged(self, plan_id, level, hold_deadline, options, idempotency_key)

    # ---- health -----------------------------------------------------------------------------------

    def health(self, service: str = "snapshot.v1.Coordinator") -> str:
        """grpc.health.v1.Health/Check: "SERVING", "NOT_SERVING", ... (NotFound for an unknown service)."""
        check = self._channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=_health_request, response_deserializer=_health_status)
        try:
            return check(service, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


class Staged:
    """See Client.staged."""

    def __init__(self, client: Client, plan_id: str, level, hold_deadline, options, idempotency_key: str):
        self._client = client
        self._args = (plan_id, level, hold_deadline, options, idempotency_key)
        self.checkpoint: Optional[pb.Checkpoint] = None
        self._finished = False

    def __enter__(self) -> "Staged":
        self.checkpoint = self._client.begin(*self._args)
        return self

    def finish(self, volumes: Iterable[VolumeSnapshot] = ()) -> pb.Checkpoint:
        assert self.checkpoint is not None, "finish inside the with block"
        self._finished = True
        self.checkpoint = self._client.finish(self.checkpoint.id, volumes)
        return self.checkpoint

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.checkpoint is None or self._finished:
            return
        try:
            self.checkpoint = self._client.cancel(self.checkpoint.id)
        except CoordinatorError:
            # Cancelling is best effort: the hold deadline releases the servers anyway.
            if exc_type is None:
                raise


def _final(last: Optional[pb.Checkpoint]) -> pb.Checkpoint:
    if last is None or last.state not in _FINAL:
        raise CoordinatorError(grpc.StatusCode.UNKNOWN, "the stream ended before the checkpoint did")
    if last.state == pb.CHECKPOINT_STATE_ABORTED:
        e = CheckpointAborted(
            grpc.StatusCode.FAILED_PRECONDITION,
            "checkpoint %d aborted (%s): %s" % (last.id, pb.FailureReason.Name(last.failure_reason), last.failure_detail),
            "CHECKPOINT_ABORTED",
            {"checkpoint_id": str(last.id)},
        )
        e.checkpoint = last
        raise e
    return last


def _health_request(service: str) -> bytes:
    data = service.encode("utf-8")
    return (b"\x0a" + _varint_bytes(len(data)) + data) if data else b""


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _health_status(data: bytes) -> str:
    # HealthCheckResponse{status = 1 (varint)}; absent means UNKNOWN (0).
    status = data[1] if len(data) >= 2 and data[0] == 0x08 else 0
    return _SERVING_STATUS.get(status, "UNKNOWN")
