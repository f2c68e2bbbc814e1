"""A small stand-in of Karbor's protection flow engine (Karbor itself is not installed here).

It keeps what a protection plugin sees of Karbor: the plugin contract (`ProtectionPlugin` with its
supported resource types, options schema and one `Operation` per protect / restore / delete, each
with the hooks `on_prepare_begin`, `on_prepare_finish`, `on_main` and `on_complete`), a checkpoint
with one bank section per resource, and the order in which Karbor's resource flow runs the hooks
over a resource graph (karbor/services/protection/resource_flow.py, as documented for protection
plugins):

1. a resource's `on_prepare_begin` runs before any hook of its child resources (a server's before
   its volumes');
2. its `on_prepare_finish` runs after its children's prepare hooks (the volumes' before the
   server's);
3. `on_main` runs after the resource's own prepare hooks; Karbor runs the resources' `on_main` in
   parallel, the stand-in one after another, children first;
4. `on_complete` runs after every hook of its children.

When a hook raises, the flow stops and reverts, as taskflow does: `revert` of every operation that
started, newest first, then the error goes to the caller. `crash_after` stops the flow after a
given hook without reverting anything: a protection service that died, whose work only the
coordinator's hold deadline can end.
"""
from typing import Callable, Dict, List, Optional


class Resource:
    def __init__(self, type: str, id: str, name: str = "", extra_info: Optional[dict] = None, dependents: Optional[List["Resource"]] = None):
        self.type = type
        self.id = id
        self.name = name or id
        self.extra_info = extra_info or {}
        #: The resources this one depends on (its children in Karbor's graph).
        self.dependents = dependents or []


class BankSection:
    """A resource's section of the checkpoint's bank: small objects by key."""

    def __init__(self):
        self._objects: Dict[str, object] = {}

    def update_object(self, key: str, value) -> None:
        self._objects[key] = value

    def get_object(self, key: str, default=None):
        return self._objects.get(key, default)

    def delete_object(self, key: str) -> None:
        self._objects.pop(key, None)


class Checkpoint:
    """Karbor's checkpoint as a plugin sees it: an id and a bank section per resource."""

    def __init__(self, id: str):
        self.id = id
        self._sections: Dict[str, BankSection] = {}

    def get_resource_bank_section(self, resource_id: str) -> BankSection:
        return self._sections.setdefault(resource_id, BankSection())


class Operation:
    """One operation of a plugin on one resource. Every hook is optional."""

    def on_prepare_begin(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_prepare_finish(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_complete(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def revert(self, checkpoint, resource, context, parameters, **kwargs):
        """Undo what the hooks did: the flow failed after this operation started."""


class ProtectionPlugin:
    """Karbor's plugin contract (karbor/services/protection/protection_plugin.py)."""

    def get_protect_operation(self, resource) -> Operation:
        raise NotImplementedError

    def get_restore_operation(self, resource) -> Operation:
        raise NotImplementedError

    def get_delete_operation(self, resource) -> Operation:
        raise NotImplementedError

    @classmethod
    def get_supported_resources_types(cls) -> List[str]:
        raise NotImplementedError

    @classmethod
    def get_options_schema(cls, resources_type: str) -> dict:
        raise NotImplementedError


class FlowCrashed(Exception):
    """The stand-in stopped the flow on purpose (`crash_after`), with no revert."""


HOOKS = ("on_prepare_begin", "on_prepare_finish", "on_main", "on_complete")


def run_flow(
    kind: str,
    roots: List[Resource],
    plugins: Dict[str, ProtectionPlugin],
    checkpoint: Checkpoint,
    parameters: Dict[str, dict],
    context: Optional[dict] = None,
    crash_after: Optional[Callable[[str, Resource], bool]] = None,
) -> List[str]:
    """Runs the `kind` ("protect", "restore", "delete") operation of every resource of the graph in
    Karbor's hook order; returns the calls made, as "<resource id>.<hook>" in order."""
    calls: List[str] = []
    started: List[tuple] = []
    operations: Dict[str, Operation] = {}
    context = context or {}

    def operation(resource: Resource) -> Operation:
        if resource.id not in operations:
            plugin = plugins[resource.type]
            operations[resource.id] = getattr(plugin, "get_%s_operation" % kind)(resource)
        return operations[resource.id]

    def call(resource: Resource, hook: str) -> None:
        op = operation(resource)
        if all(r is not resource for r, _ in started):
            started.append((resource, op))
        calls.append("%s.%s" % (resource.id, hook))
        getattr(op, hook)(checkpoint, resource, context, parameters.get(resource.type, {}), dependents=resource.dependents)
        if crash_after is not None and crash_after(hook, resource):
            raise FlowCrashed("the protection service stopped after %s of %s" % (hook, resource.id))

    def prepare(resource: Resource) -> None:
        call(resource, "on_prepare_begin")
        for d in resource.dependents:
            prepare(d)
        call(resource, "on_prepare_finish")

    def main(resource: Resource) -> None:
        for d in resource.dependents:
            main(d)
        call(resource, "on_main")

    def complete(resource: Resource) -> None:
        for d in resource.dependents:
            complete(d)
        call(resource, "on_complete")

    try:
        for phase in (prepare, main, complete):
            for root in roots:
                phase(root)
    except FlowCrashed:
        raise
    except Exception:
        for resource, op in reversed(started):
            calls.append("%s.revert" % resource.id)
            op.revert(checkpoint, resource, context, parameters.get(resource.type, {}), dependents=resource.dependents)
        raise
    return calls
