"""A Karbor protection plugin for a "consistency group": the servers and volumes of one coordinator
plan, protected together at one consistent moment (crash: every server frozen; app: the barrier
cut, every app holding its sends).

The hooks map onto the coordinator's staged checkpoint (docs/api.md, BeginCheckpoint):

- the group's `on_prepare_begin`   -> BeginCheckpoint: returns once the servers are held;
- its volumes' `on_prepare_finish` -> each volume plugin snapshots its volume (held: consistent)
  and leaves the snapshot's id and times in its bank section;
- the group's `on_prepare_finish`  -> FinishCheckpoint with those snapshots: checked against the
  frozen window, the servers released, the checkpoint committed;
- `revert` (the flow failed between begin and finish) -> CancelCheckpoint: the servers are thawed
  at once and the checkpoint aborted. Should the protection service die instead, the agents
  release the servers at the hold deadline and the coordinator aborts the checkpoint by itself.

Restore puts the plan back to the checkpoint (RollbackSnapshot), delete deletes it
(DeleteCheckpoint); the volume snapshots are the volume plugins' to restore and delete. The group
records its status and reason in its bank section ("status": available / error, "reason").
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))

import snapshot_coordinator as sc  # noqa: E402

from flow import Operation, ProtectionPlugin  # noqa: E402

GROUP_TYPE = "OS::Snapshot::ConsistencyGroup"
VOLUME_TYPE = "OS::Cinder::Volume"

OPTIONS_SCHEMA = {
    "title": "Consistency group protection options",
    "type": "object",
    "properties": {
        "consistency_level": {
            "type": "string",
            "title": "Consistency level",
            "description": "crash: every server frozen at one moment; app: a consistent cut of the apps, each holding its sends",
            "enum": ["crash", "app"],
            "default": "crash",
        },
        "hold_deadline_s": {
            "type": "integer",
            "title": "Hold deadline (s)",
            "description": "the servers are released by themselves this long after the begin, whatever becomes of the protection",
            "minimum": 1,
            "maximum": 60,
            "default": 20,
        },
    },
    "required": ["consistency_level"],
}

BANK_CHECKPOINT_ID = "coordinator_checkpoint_id"


class _GroupOperation(Operation):
    def __init__(self, address: str):
        self.address = address

    def client(self) -> sc.Client:
        return sc.Client(self.address, timeout=20, wait_timeout=120)

    @staticmethod
    def status(checkpoint, resource, status: str, reason: str = "") -> None:
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", status)
        section.update_object("reason", reason)


class ProtectOperation(_GroupOperation):
    def on_prepare_begin(self, checkpoint, resource, context, parameters, **kwargs):
        level = parameters.get("consistency_level", "crash")
        hold = parameters.get("hold_deadline_s", 20)
        with self.client() as client:
            held = client.begin(resource.id, level, hold_deadline=hold, idempotency_key="karbor-%s-%s" % (checkpoint.id, resource.id))
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object(BANK_CHECKPOINT_ID, held.id)
        self.status(checkpoint, resource, "protecting")

    def on_prepare_finish(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        volumes = []
        for volume in kwargs.get("dependents", []):
            if volume.type != VOLUME_TYPE:
                continue
            taken = checkpoint.get_resource_bank_section(volume.id).get_object("snapshot")
            volumes.append(sc.VolumeSnapshot(volume.extra_info["volume_id"], volume.extra_info["server"], taken["snapshot_ref"], taken["started_at"], taken["ended_at"]))
        try:
            with self.client() as client:
                done = client.finish(section.get_object(BANK_CHECKPOINT_ID), volumes)
        except sc.CoordinatorError as e:
            self.status(checkpoint, resource, "error", "%s: %s" % (e.reason or e.code.name, e.details))
            raise
        section.update_object("finished_at", done.finished_at.ToDatetime().isoformat())
        self.status(checkpoint, resource, "available")

    def revert(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        checkpoint_id = section.get_object(BANK_CHECKPOINT_ID)
        if checkpoint_id is None or section.get_object("status") == "available":
            return
        with self.client() as client:
            try:
                client.cancel(checkpoint_id)
            except sc.FailedPrecondition:
                # Completed meanwhile: nothing left to roll back here.
                return
        self.status(checkpoint, resource, "error", section.get_object("reason") or "the protection failed; coordinator checkpoint %s cancelled" % checkpoint_id)


class RestoreOperation(_GroupOperation):
    def __init__(self, address: str, checkpoint_id: int):
        super().__init__(address)
        self.checkpoint_id = checkpoint_id

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        with self.client() as client:
            client.rollback(self.checkpoint_id)
        self.status(checkpoint, resource, "restored")


class DeleteOperation(_GroupOperation):
    def __init__(self, address: str, checkpoint_id: int):
        super().__init__(address)
        self.checkpoint_id = checkpoint_id

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        with self.client() as client:
            try:
                client.delete(self.checkpoint_id)
            except sc.NotFound:
                pass
        self.status(checkpoint, resource, "deleted")


class ConsistencyGroupProtectionPlugin(ProtectionPlugin):
    """`config`: {"address": the coordinator's gRPC address}. Restore and delete act on the
    coordinator checkpoint the protect recorded in the resource's bank section (`bank`)."""

    def __init__(self, config: dict):
        self.address = config["address"]
        self.bank = config.get("bank")

    @classmethod
    def get_supported_resources_types(cls):
        return [GROUP_TYPE]

    @classmethod
    def get_options_schema(cls, resources_type):
        return OPTIONS_SCHEMA

    def get_protect_operation(self, resource):
        return ProtectOperation(self.address)

    def get_restore_operation(self, resource):
        return RestoreOperation(self.address, self.bank.get_resource_bank_section(resource.id).get_object(BANK_CHECKPOINT_ID))

    def get_delete_operation(self, resource):
        return DeleteOperation(self.address, self.bank.get_resource_bank_section(resource.id).get_object(BANK_CHECKPOINT_ID))


class ExampleVolumeProtectionPlugin(ProtectionPlugin):
    """A stand-in of a volume plugin (Cinder's would call its snapshot API): it "snapshots" its
    volume in `on_prepare_finish`, when the group holds the servers, by calling `snapshot(volume)`,
    and leaves the snapshot's id and times for the group in its bank section."""

    def __init__(self, snapshot):
        self.snapshot = snapshot

    @classmethod
    def get_supported_resources_types(cls):
        return [VOLUME_TYPE]

    @classmethod
    def get_options_schema(cls, resources_type):
        return {"type": "object", "properties": {}}

    def get_protect_operation(self, resource):
        plugin = self

        class Protect(Operation):
            def on_prepare_finish(self, checkpoint, resource, context, parameters, **kwargs):
                started = datetime.datetime.now(datetime.timezone.utc)
                ref = plugin.snapshot(resource)
                checkpoint.get_resource_bank_section(resource.id).update_object(
                    "snapshot", {"snapshot_ref": ref, "started_at": started, "ended_at": datetime.datetime.now(datetime.timezone.utc)}
                )

        return Protect()

    def get_restore_operation(self, resource):
        # A real volume plugin restores its snapshot here; the stand-in has nothing to put back.
        return Operation()

    def get_delete_operation(self, resource):
        # A real volume plugin deletes its snapshot here: the coordinator never does.
        return Operation()
