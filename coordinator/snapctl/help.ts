/** snapctl's help texts: one per command, each listing its options, the exit codes and an example. */

export const EXIT = {
  ok: 0,
  /** The coordinator answered with an error, or could not be reached. */
  coordinator: 1,
  /** The command line (or an input file) is wrong; nothing was sent. */
  usage: 2,
  /** take --watch: the checkpoint ended aborted. */
  aborted: 3,
  /** verify: the checkpoint has problems. */
  verifyFailed: 4,
  /** Ctrl-C while watching (the checkpoint itself goes on). */
  interrupted: 130,
} as const;

export const ADDRESS_DEFAULT = '127.0.0.1:50051';

const EXIT_HELP = `Exit codes:
  0  ok
  1  the coordinator answered with an error (its gRPC code and message are printed) or could not be
     reached (UNAVAILABLE, DEADLINE_EXCEEDED)
  2  usage: a wrong command line or input file; nothing was sent
  3  take --watch: the checkpoint was aborted
  4  verify: the checkpoint has problems`;

const GLOBAL_HELP = `Global options (before or after the command):
  --address HOST:PORT   the coordinator's gRPC address (default: $SNAPCTL_ADDRESS, else ${ADDRESS_DEFAULT});
                        several, comma-separated (a leader and its standbys): a call answered
                        UNAVAILABLE by one is made on the next
  -o, --output FORMAT   text (default), wide (more columns), json or yaml
  --json                the same as -o json: one JSON document (take --watch and watch: one
                        per line); a failure too, as {"error": {"code", "message", "text"}} on
                        stdout alone (-o yaml: the same document as YAML)
  --token TOKEN         a bearer token for a coordinator with authentication (default: $SNAPCTL_TOKEN);
                        sent in plaintext only to an address on this machine, unless --insecure
  --ca FILE             TLS, trusting the coordinator's certificate by this CA (default: $SNAPCTL_CA)
  --cert FILE --key FILE  TLS with this client certificate, for mTLS (default: $SNAPCTL_CERT, $SNAPCTL_KEY)
  --tls-server-name NAME  the name the coordinator's certificate carries, when the address does not
                        (an IP address, a load balancer) (default: $SNAPCTL_TLS_SERVER_NAME)
  --insecure            plaintext, and a token may go to a coordinator on another machine: anyone on
                        the path can read it (development only; snapctl says so on stderr)
  -h, --help            help on the command`;

export const HELP: Readonly<Record<string, string>> = {
  main: `snapctl: a command-line client of the snapshot coordinator (gRPC).

Usage: snapctl [--address HOST:PORT] [-o text|wide|json|yaml] <command> [options]

Commands:
  plans list [--tenant T]                 the registered plans
  plans show ID                           one plan: servers, apps, channels, volumes
  plans register FILE.json [--replace]    create (or replace) a plan from a JSON file
  plans delete ID [--with-checkpoints]    delete a plan
  take --plan ID --level LEVEL [...]      start a checkpoint (--watch to follow it to the end)
  list [--plan ID] [--state S]            checkpoints, newest first
  show ID                                 one checkpoint in full, with per-app statistics
  rollback ID [--no-safety]               put the plan's apps back to a checkpoint
  restore ID --map SRC=DST[,...]          load a checkpoint into other servers or apps
                                          (--from-site SITE: from the copy that site holds)
  copy ID --site SITE                     copy a checkpoint to another site, verified there
  copies --site SITE [--plan ID]          the copies a site holds, with their source
  verify ID                               check every part and the cut of a checkpoint
  delete ID                               delete a checkpoint, its stored parts and volume snapshots
  cancel ID                               abort a checkpoint in flight
  pin ID / unpin ID                       keep a checkpoint whatever retention says / stop keeping it
  agents [--tenant T]                     registered agents and their heartbeats
  watch --plan ID | --tenant T            every checkpoint of a plan or tenant as it changes
  policy create|update|show|list|delete   a plan's schedule and retention
  stats PLAN                              summary statistics of a plan's checkpoints
  audit [--tenant T] [--since 1h]         the audit trail of calls that changed something (reads NATS)
  nats init | nats push                   operator mode: the NATS key directory (on the coordinator's host)
  tenant create T | tenant list           a tenant's NATS account
  agent enroll|revoke|list --tenant T ... an agent's NATS credential (snapctl agent --help)
  completion bash|zsh                     a shell completion script
  help [COMMAND]                          help on a command (also: COMMAND --help)

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl take --plan demo --level app --watch && snapctl list --plan demo
`,
  plans: `Usage: snapctl plans list|show|register|delete ...

  plans list [--tenant T]
  plans show ID
  plans register FILE.json [--replace | --revision N]
  plans delete ID [--with-checkpoints]

See \`snapctl plans COMMAND --help\`.

${GLOBAL_HELP}

${EXIT_HELP}
`,
  'plans list': `Usage: snapctl plans list [--tenant T]

Every registered plan (all pages), sorted by id: id, tenant, servers, apps, channels, volumes,
revision.

Options:
  --tenant T   only this tenant's plans

${GLOBAL_HELP}

${EXIT_HELP}
`,
  'plans show': `Usage: snapctl plans show ID

One plan: its servers, apps, channels (with kind) and volumes, and its revision.

${GLOBAL_HELP}

${EXIT_HELP}
`,
  'plans register': `Usage: snapctl plans register FILE.json [--replace | --revision N]

Registers the plan in FILE.json. Without options the plan must not exist yet (ALREADY_EXISTS
otherwise). --revision N replaces it only if its current revision is N (compare-and-set);
--replace reads the current revision first and replaces whatever is there.

FILE.json (an app is {"server": "...", "app": "..."} or the short form "server/app"):
  {
    "id": "demo", "tenant": "acme",
    "servers": ["srv1", "srv2"],
    "apps": ["srv1/APP1", "srv2/APP2"],
    "channels": [{"from": "srv1/APP1", "to": "srv2/APP2", "kind": "in-band"},
                 {"from": "srv2/APP2", "to": "srv1/APP1", "kind": "log", "logStream": "ORDERS",
                  "logSubject": "ORDERS.srv2.APP2.srv1.APP1"}],
    "volumes": [{"id": "vol1", "server": "srv1", "backendRef": "pool/vol1"}]
  }
Channel kinds: in-band, log (needs logStream; logSubject optional, as its agents have it), opaque.

Options:
  --replace      replace the plan if it exists
  --revision N   replace the plan only at revision N

${GLOBAL_HELP}

${EXIT_HELP}
`,
  'plans delete': `Usage: snapctl plans delete ID [--with-checkpoints]

Deletes a plan. A plan that still has checkpoints is refused (FAILED_PRECONDITION) unless
--with-checkpoints is given, which deletes them and their stored parts too.

${GLOBAL_HELP}

${EXIT_HELP}
`,
  take: `Usage: snapctl take --plan ID --level none|crash|app [options]

Starts a checkpoint of a plan and prints its id. With --watch, follows it live (a table per app
on a terminal, one line per event otherwise) until it completes (exit 0) or aborts (exit 3).
Ctrl-C stops watching; the checkpoint goes on.

Options:
  --plan ID                  the plan (required)
  --level LEVEL              none, crash or app (required)
  --aligned | --unaligned    how apps with several inputs line up barriers (default: aligned)
  --alignment-timeout MS     aligned only: switch to unaligned after MS; 0 never (default: 0)
  --timeout MS               abort if not completed within MS (default: the coordinator's)
  --fallback fail|downgrade  when the level cannot be reached (default: fail)
  --freeze-deadline MS       crash level: agents thaw by themselves after MS (default: the coordinator's)
  --max-concurrent N         checkpoints of the plan in flight at once, this one included (default 1);
                             beyond it the plan is busy: RESOURCE_EXHAUSTED, reason PLAN_BUSY
  --idempotency-key K        a retry with the same key returns the same checkpoint; the same key with
                             other options is refused (IDEMPOTENCY_KEY_REUSED)
  --watch                    follow the checkpoint to its end

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl take --plan demo --level app --unaligned --timeout 30000 --watch
`,
  list: `Usage: snapctl list [--plan ID] [--state S[,S...]] [--limit N]

Checkpoints, newest first: id, plan, level requested (-> achieved), state, acked/total, duration,
size, failure; and COPIES when a listed checkpoint has copies at other sites (each site with its
copy's lag after the checkpoint completed, or "failed").

Options:
  --plan ID      only this plan's checkpoints
  --state S      only these states: pending, triggering, collecting, held, committing,
                 completed, aborting, aborted (comma-separated or repeated)
  --limit N      at most N checkpoints (default 100)

${GLOBAL_HELP}

${EXIT_HELP}
`,
  show: `Usage: snapctl show ID

One checkpoint in full: plan, levels requested and achieved, state, failure, options, times,
per-app statistics (ack, alignment, sync and async durations, sizes, unaligned finish, failure)
and volume snapshots with their frozen window; its copies at other sites (when made and their
lag, or why the last attempt failed), and for a checkpoint imported by a restore from a site,
where it came from.

${GLOBAL_HELP}

${EXIT_HELP}
`,
  rollback: `Usage: snapctl rollback ID [--no-safety] [--idempotency-key K]

Puts the plan's current apps back to completed checkpoint ID. First takes a safety checkpoint of
the current state (its id is printed) unless --no-safety is given.

Options:
  --no-safety            do not take a safety checkpoint first
  --idempotency-key K    a retry with the same key does not roll back twice

${GLOBAL_HELP}

${EXIT_HELP}
`,
  restore: `Usage: snapctl restore ID --map SRC=DST[,SRC=DST...] [--idempotency-key K]
                     [--from-site SITE [--source-site NAME]]

Loads completed checkpoint ID into other servers or apps, leaving the originals untouched.
A mapping is either server to server (srv1=srv7: every app of srv1 goes to srv7 under its own
name) or app to app (srv1/APP1=srv7/APP9, which wins over its server's mapping).

With --from-site, from the copy of checkpoint ID (its id where it was taken) that SITE holds,
while the deployment that took it may be down: the copy is read at the site against its digests,
imported here as a new pinned checkpoint (its id is printed) and restored from it.

Options:
  --map SRC=DST[,...]    mappings (repeatable)
  --idempotency-key K    a retry with the same key does not restore twice
  --from-site SITE       restore from the copy at this site (configured at the coordinator)
  --source-site NAME     the deployment that took the checkpoint, when SITE holds copies of
                         checkpoint ID from several (snapctl copies --site SITE lists them)

${GLOBAL_HELP}

${EXIT_HELP}
`,
  copy: `Usage: snapctl copy ID --site SITE

Copies completed checkpoint ID to SITE (a NATS deployment configured at the coordinator,
docs/sites.md): its record, app states, channel states and volume snapshot references. Every
object is read back at the site against its digest before the copy's record is written there, so
the site never lists a half-made copy. Prints the copy's lag after the checkpoint completed.

Options:
  --site SITE    the site to copy to

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl copy 42 --site dr && snapctl copies --site dr
`,
  copies: `Usage: snapctl copies --site SITE [--plan ID]

The copies SITE holds, from every deployment that copies there: source site, checkpoint id there,
plan, tenant, level, when it completed and when it was copied, objects and size.

Options:
  --site SITE    the site to list
  --plan ID      only copies of this plan's checkpoints

${GLOBAL_HELP}

${EXIT_HELP}
`,
  verify: `Usage: snapctl verify ID

Checks checkpoint ID: every part present, every digest matching, the recorded cut consistent.
Exit 0 when it is sound, 4 when it has problems (each one printed).

${GLOBAL_HELP}

${EXIT_HELP}
`,
  delete: `Usage: snapctl delete ID [--idempotency-key K]

Deletes checkpoint ID, its stored parts and its volume snapshots (through the coordinator's volume
backend), and prints what went. Refused while it runs (cancel it first) or is pinned (unpin it first).

Options:
  --idempotency-key K    a retry with the same key answers as the first call did

${GLOBAL_HELP}

${EXIT_HELP}
`,
  cancel: `Usage: snapctl cancel ID [--idempotency-key K]

Aborts checkpoint ID while it is in flight: agents are told, its stored parts and volume snapshots
are deleted, and it ends ABORTED with reason cancelled. Cancelling an aborted checkpoint is a no-op;
a completed one is refused (delete it instead).

Options:
  --idempotency-key K    a retry with the same key answers as the first call did

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl cancel 42 && snapctl show 42
`,
  pin: `Usage: snapctl pin ID [--idempotency-key K]

Pins completed checkpoint ID: retention never deletes it, and it does not count against the
number kept per plan. A pinned checkpoint cannot be deleted until it is unpinned.

Options:
  --idempotency-key K    a retry with the same key answers as the first call did

${GLOBAL_HELP}

${EXIT_HELP}
`,
  unpin: `Usage: snapctl unpin ID [--idempotency-key K]

Unpins checkpoint ID: retention treats it like any other completed checkpoint again.

Options:
  --idempotency-key K    a retry with the same key answers as the first call did

${GLOBAL_HELP}

${EXIT_HELP}
`,
  audit: `Usage: snapctl audit [--tenant T] [--since DURATION] [--nats URL]

The audit trail of a coordinator with authentication (docs/security.md): every call that changed
something or was refused as one: time, identity, tenant, method, gRPC code and arguments, oldest
first. It is read from the snap-audit JetStream stream, not over gRPC: whoever may read that
stream on NATS reads the trail.

Options:
  --tenant T        only entries of callers bound to tenant T ("*": callers of every tenant)
  --since DURATION  only the last 90s, 15m, 2h, 7d...
  --nats URL        the coordinator's NATS (default: $NATS_URL, else nats://127.0.0.1:4222); with NATS in
                    operator mode, $SNAPCTL_NATS_CREDS names the credentials to read it with
                    (the coordinator's: KEYS_DIR/coordinator/user.creds, docs/security.md)

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl audit --tenant acme --since 24h -o json
`,
  agents: `Usage: snapctl agents [--tenant T]

Registered agents: tenant, server, status (online, late, offline), frozen, apps, version, last
heartbeat.

Options:
  --tenant T   only this tenant's agents

${GLOBAL_HELP}

${EXIT_HELP}
`,
  watch: `Usage: snapctl watch --plan ID | --tenant T [--interval MS]

Every checkpoint of the plan (or of every plan of the tenant) as it changes, one line per change:
the time, the time since the previous line (+1.2s), the plan, the checkpoint, its level, state,
progress and age; until Ctrl-C (exit 0). The first lines show the checkpoints in flight and the
newest of each plan. With -o json, one {"atUnixMs", "checkpoint"} document per line.

Options:
  --plan ID       this plan's checkpoints
  --tenant T      the checkpoints of every plan of this tenant
  --interval MS   how often to look (default 1000, at least 100)

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl watch --plan demo
`,
  policy: `Usage: snapctl policy create|update|show|list|delete ...

  policy create PLAN [schedule options] [retention options]
  policy update PLAN [schedule options] [retention options] [--revision N]
  policy show PLAN
  policy list [--tenant T]
  policy delete PLAN

A plan's policy: its periodic checkpoints and which completed checkpoints retention keeps. It is
stored with the plans (a coordinator restart keeps it). Pinned checkpoints and the safety
checkpoints and targets of recent rollbacks are never deleted by it.

Schedule options (exactly one of --interval and --cron):
  --interval MS              a checkpoint every MS
  --cron "M H DOM MON DOW"   at the cron's times, UTC (5 fields; *, a-b, */n, lists; DOW 0-7)
  --level none|crash|app     default app
  --window HH:MM-HH:MM       start checkpoints only in this daily window, UTC (may wrap midnight)
  --jitter MS                delay each start by a random time up to MS
  --min-pause MS             at least MS between the end of one checkpoint and the next start
  --tolerable-failures N     suspend after more than N consecutive failures (default 3) until a
                             checkpoint of the plan completes

Retention options (a checkpoint is kept when any of them keeps it):
  --keep-last N              the newest N
  --keep-daily N             the newest of each of the last N days (UTC) that have one
  --keep-weekly N            ... of the last N weeks (Monday to Sunday)
  --keep-monthly N           ... of the last N calendar months
  --keep-within MS           every checkpoint that finished within MS

update replaces the whole policy (give the schedule and the retention you want to keep); with
--revision N only if the policy is still at revision N.

${GLOBAL_HELP}

${EXIT_HELP}

Example:
  snapctl policy create demo --cron "0 2 * * *" --level crash --jitter 60000 --keep-daily 7 --keep-weekly 4
`,
  stats: `Usage: snapctl stats PLAN

Summary statistics of the plan's checkpoints in the store, like Flink's checkpoint overview:
counts (completed, aborted, in flight), min/avg/max duration and size of the completed ones, the
latest completed checkpoint and the last failure with its reason.

${GLOBAL_HELP}

${EXIT_HELP}
`,
  completion: `Usage: snapctl completion bash|zsh

Prints a completion script for the shell: commands, subcommands and options.

  source <(snapctl completion bash)
  snapctl completion zsh > "\${fpath[1]}/_snapctl"

${GLOBAL_HELP}

${EXIT_HELP}
`,
};
