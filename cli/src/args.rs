//! The command line: every command, flag and argument (clap), in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "Issue, rotate, revoke and publish API keys; verify them offline."
)]
pub(crate) struct Cli {
    /// The store: a directory (SQLite: keygate.db and the signing keys) or
    /// a PostgreSQL URL (`postgres://user@host/db`) shared by several
    /// instances.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_STORE",
        default_value = "./keygate-store"
    )]
    pub(crate) store: String,
    /// A PostgreSQL store's seal key (64 hex characters; `init` creates the
    /// file when missing): its signing keys are stored sealed under it.
    #[arg(long, global = true, env = "KEYGATE_SEAL_KEY_FILE")]
    pub(crate) seal_key_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Who is acting, for the audit log (default: the OS user).
    #[arg(long, global = true, env = "KEYGATE_ACTOR")]
    pub(crate) actor: Option<String>,
    /// Pretend it is this time (unix seconds or RFC 3339): for tests and
    /// drills only — keys and artifacts made under it carry the false time.
    #[arg(
        long = "dangerous-clock",
        global = true,
        env = "KEYGATE_DANGEROUS_NOW",
        hide = true
    )]
    pub(crate) clock: Option<String>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Create a new store with its first signing key.
    Init(InitArgs),
    /// Issue a key (printed exactly once).
    Issue(IssueArgs),
    /// Issue a new key for a principal; its current keys become deprecated.
    Rotate(RotateArgs),
    /// Rotation policy classes (max-age, grace, rotate-before).
    Policy(PolicyArgs),
    /// Principal settings.
    Principal(PrincipalArgs),
    /// Keys due for rotation, expiring, or at sunset soon. Exit 1 when any are.
    Due(DueArgs),
    /// Issuer metrics in Prometheus text.
    Metrics,
    /// Revoke keys immediately (idempotent).
    Revoke(RevokeArgs),
    /// List keys.
    List(ListArgs),
    /// Import existing keys by SHA-256 digest.
    Import(ImportArgs),
    /// Publish: the update (revocations, added and changed keys) against the
    /// last snapshot, or a new full snapshot when the update has grown or the
    /// snapshot aged (each file written atomically).
    Publish(PublishArgs),
    /// Verify a key against published artifacts, as a gateway would.
    Verify(VerifyArgs),
    /// Show header, counts, signer and validity of any artifact.
    Inspect(InspectArgs),
    /// The audit chain.
    Audit(AuditArgs),
    /// Find keys of this keyset in files (never prints the secret).
    Scan(ScanArgs),
    /// Signing-key management.
    Signer(SignerArgs),
    /// The issuer as an HTTP admin API (callers hold admin keys), publishing
    /// on its own with --publish-to.
    Api(ApiArgs),
    /// Create, list or revoke admin keys (for keygate api). The key is
    /// printed once.
    AdminKey(AdminKeyArgs),
    /// Forward-auth HTTP service (nginx auth_request, Traefik ForwardAuth,
    /// Envoy ext_authz, Caddy forward_auth).
    Serve(ServeArgs),
    /// A simulated fleet under traffic: rotation, breach and bad-push drills.
    Drill(DrillArgs),
    /// Run the whole issue → publish → verify → rotate → revoke cycle in a
    /// temporary store and show what happened.
    Demo,
}

#[derive(Args)]
pub(crate) struct IssueArgs {
    #[arg(long)]
    pub(crate) principal: String,
    #[arg(long = "scope")]
    pub(crate) scopes: Vec<String>,
    #[arg(long)]
    pub(crate) expires: Option<String>,
    #[arg(long)]
    pub(crate) not_before: Option<String>,
    /// Issue this many keys (bulk); needs --keys-out.
    #[arg(long, default_value_t = 1)]
    pub(crate) count: u64,
    /// Write the keys here, one per line (mode 0600).
    #[arg(long)]
    pub(crate) keys_out: Option<PathBuf>,
    /// Put the principal in this policy class (its max-age sets the expiry).
    #[arg(long)]
    pub(crate) class: Option<String>,
}

#[derive(Args)]
pub(crate) struct RotateArgs {
    /// The principal to rotate (or --key-id for one of its keys, or --due for
    /// every principal with a due key).
    #[arg(long, required_unless_present_any = ["due", "key_id"], conflicts_with_all = ["due", "key_id"])]
    pub(crate) principal: Option<String>,
    /// Rotate only this key (id): a new key for its principal, only this one
    /// deprecated — for a principal with a key per region or instance.
    #[arg(long, conflicts_with = "due")]
    pub(crate) key_id: Option<String>,
    /// Grace window before the old keys stop working (default: the class's, else 7d).
    #[arg(long)]
    pub(crate) grace: Option<String>,
    /// Put the principal in this policy class first.
    #[arg(long, requires = "principal")]
    pub(crate) class: Option<String>,
    /// Rotate every principal with a key due within --within.
    #[arg(long)]
    pub(crate) due: bool,
    /// With --due: the window.
    #[arg(long, default_value = "7d", requires = "due")]
    pub(crate) within: String,
    /// With --due: show what would be rotated, change nothing.
    #[arg(long, requires = "due")]
    pub(crate) dry_run: bool,
    /// With --due: write the new keys here ("principal key" per line, mode 0600)
    /// instead of printing them.
    #[arg(long, requires = "due")]
    pub(crate) keys_out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Create or change a class.
    Set {
        class: String,
        #[arg(long)]
        max_age: String,
        #[arg(long)]
        grace: String,
        #[arg(long)]
        rotate_before: Option<String>,
    },
    /// List the classes.
    List,
}

#[derive(Subcommand)]
pub(crate) enum PrincipalCmd {
    /// Put a principal in a policy class.
    Set {
        principal: String,
        #[arg(long)]
        class: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "target")]
pub(crate) struct RevokeTargetArgs {
    #[arg(long)]
    pub(crate) key_id: Option<String>,
    /// The key itself (`-` reads it from stdin).
    #[arg(long)]
    pub(crate) key: Option<String>,
    #[arg(long)]
    pub(crate) principal: Option<String>,
    /// A file of key ids, one per line.
    #[arg(long)]
    pub(crate) from: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) target: RevokeTargetArgs,
    #[arg(long)]
    pub(crate) reason: Option<String>,
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    #[arg(long, required_unless_present = "from")]
    pub(crate) principal: Option<String>,
    /// SHA-256 of the existing key, 64 hex digits.
    #[arg(long, requires = "principal")]
    pub(crate) sha256: Option<String>,
    #[arg(long = "scope")]
    pub(crate) scopes: Vec<String>,
    #[arg(long)]
    pub(crate) expires_at: Option<String>,
    /// JSON lines: {"principal": .., "sha256": .., "scopes": [..], "expires_at": ..}
    #[arg(long, conflicts_with = "sha256")]
    pub(crate) from: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Recompute the chain; name the first entry changed, removed or
    /// reordered, entries cut off its end, or a key row changed outside keygate.
    Verify {
        /// Check against the audit head signed into this published snapshot
        /// (default: the store's copy of the last one published).
        #[arg(long)]
        snapshot: Option<PathBuf>,
    },
    /// Print the entries.
    Log,
}

#[derive(Subcommand)]
pub(crate) enum SignerCmd {
    /// New signing key; gateways follow through the trust-bundle chain.
    Rotate,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    #[arg(long)]
    pub(crate) keyset: String,
    #[arg(long)]
    pub(crate) prefix: String,
}

#[derive(Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    pub(crate) cmd: PolicyCmd,
}

#[derive(Args)]
pub(crate) struct PrincipalArgs {
    #[command(subcommand)]
    pub(crate) cmd: PrincipalCmd,
}

#[derive(Args)]
pub(crate) struct DueArgs {
    /// Look this far ahead.
    #[arg(long, default_value = "7d")]
    pub(crate) within: String,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    #[arg(long)]
    pub(crate) principal: Option<String>,
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// A gateway's Prometheus export (`curl gw/metrics > gw.prom`), for the
    /// last use of deprecated keys; repeat for each gateway.
    #[arg(long, value_name = "FILE")]
    pub(crate) usage: Vec<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PublishArgs {
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// How long gateways may treat the artifacts as fresh.
    #[arg(long, default_value = "7d")]
    pub(crate) valid_for: String,
    /// Only a new update against the last published snapshot (revocations,
    /// added and changed keys); `--revocations-only` is its old name.
    #[arg(long, visible_alias = "revocations-only", conflicts_with = "full")]
    pub(crate) update: bool,
    /// A new full snapshot (and an empty update against it).
    #[arg(long)]
    pub(crate) full: bool,
    /// Without --update or --full, a full snapshot when --out does not hold
    /// the last one as published (a new directory, a damaged file), or once the update would
    /// carry more than this many added or changed keys (default: 1 000,
    /// or 2 % of the snapshot's keys if more).
    #[arg(long, value_name = "N")]
    pub(crate) compact_records: Option<u64>,
    /// Without --update or --full: a full snapshot once the last one is
    /// older than this.
    #[arg(long, default_value = "1d", value_name = "DURATION")]
    pub(crate) compact_age: String,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// A publish directory, read as a gateway reads it: trust.kgt,
    /// snapshot.kgs and (when there) revocations.kgr, by their names.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["trust", "snapshot", "revocations"])]
    pub(crate) artifacts_dir: Option<PathBuf>,
    #[arg(long, required_unless_present = "artifacts_dir")]
    pub(crate) trust: Option<PathBuf>,
    #[arg(long, required_unless_present = "artifacts_dir")]
    pub(crate) snapshot: Option<PathBuf>,
    /// The update (revocations, added and changed keys).
    #[arg(long)]
    pub(crate) revocations: Option<PathBuf>,
    #[arg(long)]
    pub(crate) scope: Option<String>,
    /// Unix seconds or RFC 3339 (default: now).
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// The key, or `-` to read it from stdin.
    pub(crate) key: String,
}

#[derive(Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    pub(crate) cmd: AuditCmd,
}

#[derive(Args)]
pub(crate) struct ScanArgs {
    pub(crate) paths: Vec<PathBuf>,
    /// Revoke the active keys found (reason "leaked").
    #[arg(long)]
    pub(crate) revoke: bool,
    /// Skip files that .gitignore/.ignore exclude (by default they are
    /// scanned: an ignored .env is where a leaked key usually sits).
    #[arg(long)]
    pub(crate) respect_gitignore: bool,
}

#[derive(Args)]
pub(crate) struct SignerArgs {
    #[command(subcommand)]
    pub(crate) cmd: SignerCmd,
}

#[derive(Args)]
pub(crate) struct ApiArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub(crate) listen: String,
    /// Publish here on every change: revocations at once, new or
    /// rotated keys after --publish-delay.
    #[arg(long, value_name = "DIR")]
    pub(crate) publish_to: Option<PathBuf>,
    /// Run after every publish (with KEYGATE_PUBLISH_DIR set), e.g. to
    /// sync the directory to a bucket or CDN.
    #[arg(long, value_name = "CMD", requires = "publish_to")]
    pub(crate) publish_hook: Option<String>,
    /// How long a new or rotated key waits for a full publish (changes
    /// within it are published together).
    #[arg(long, default_value = "1s")]
    pub(crate) publish_delay: String,
    /// How often the fleet's gateways poll (for usable_at in answers).
    #[arg(long, default_value = "1s")]
    pub(crate) fleet_poll: String,
    /// Lifetime of published artifacts.
    #[arg(long, default_value = "7d")]
    pub(crate) valid_for: String,
    /// A full snapshot is rebuilt at least this often, changes or not
    /// (so published artifacts never come near the end of --valid-for).
    #[arg(long, default_value = "1h")]
    pub(crate) snapshot_every: String,
    /// A gateway's metrics URL (keygate serve's /metrics, the nginx
    /// keygate_metrics location, Envoy's /stats/prometheus), scraped by
    /// GET /v1/usage; repeat for each gateway.
    #[arg(long, value_name = "URL")]
    pub(crate) usage_from: Vec<String>,
    /// Most connections open at once.
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_connections: usize,
    /// Time a client has to send a request's headers.
    #[arg(long, default_value = "10s")]
    pub(crate) header_timeout: String,
    /// Worker threads.
    #[arg(long, default_value_t = 4)]
    pub(crate) threads: usize,
}

#[derive(Args)]
pub(crate) struct AdminKeyArgs {
    /// Who holds the new key.
    #[arg(long, conflicts_with_all = ["list", "revoke", "rotate"])]
    pub(crate) principal: Option<String>,
    /// Scopes of the new key: keys:read, keys:write, keys:revoke,
    /// audit:read, publish, metrics:read.
    #[arg(long = "scope")]
    pub(crate) scopes: Vec<String>,
    /// List the admin keys.
    #[arg(long)]
    pub(crate) list: bool,
    /// Revoke this admin key (id).
    #[arg(long, value_name = "KEY_ID", conflicts_with = "rotate")]
    pub(crate) revoke: Option<String>,
    /// Rotate this admin key (id): a new key with its principal and
    /// scopes, printed once; the old one works for --grace more.
    #[arg(long, value_name = "KEY_ID")]
    pub(crate) rotate: Option<String>,
    /// How long a rotated admin key keeps working.
    #[arg(long, default_value = "1d", requires = "rotate")]
    pub(crate) grace: String,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on: every request here is an authorization question.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub(crate) listen: String,
    /// Address for /healthz and /metrics (none unless given): a separate
    /// listener, so no forwarded request can reach them.
    #[arg(long)]
    pub(crate) metrics_listen: Option<String>,
    /// The pinned trust anchor (a local .kgt). Required: artifacts come
    /// over untrusted channels, so the origin may only serve newer trust
    /// bundles that chain from this one.
    #[arg(long)]
    pub(crate) trust: PathBuf,
    /// Snapshot file.
    #[arg(long, required_unless_present_any = ["artifacts_dir", "artifacts_url"])]
    pub(crate) snapshot: Option<PathBuf>,
    /// Revocation update file.
    #[arg(long)]
    pub(crate) revocations: Option<PathBuf>,
    /// A publish directory holding snapshot.kgs, revocations.kgr (and
    /// trust.kgt, followed from the pinned --trust).
    #[arg(long, conflicts_with_all = ["snapshot", "revocations", "artifacts_url"])]
    pub(crate) artifacts_dir: Option<PathBuf>,
    /// A URL serving trust.kgt, snapshot.kgs, revocations.kgr (a static
    /// origin, bucket or CDN), polled with If-None-Match.
    #[arg(long, conflicts_with_all = ["snapshot", "revocations"])]
    pub(crate) artifacts_url: Option<String>,
    /// How often to re-read the artifacts.
    #[arg(long, default_value = "1s")]
    pub(crate) poll: String,
    /// Required scope.
    #[arg(long)]
    pub(crate) scope: Option<String>,
    /// Take the required scope from the X-Keygate-Scope request header
    /// when present (only behind a front proxy that sets it and removes
    /// any client copy; otherwise a client picks its own scope).
    #[arg(long)]
    pub(crate) trust_scope_header: bool,
    /// Persist the highest versions installed here, so a restart cannot
    /// be rolled back to older signed artifacts.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Realm in WWW-Authenticate.
    #[arg(long, default_value = "keygate")]
    pub(crate) realm: String,
    /// Worker threads.
    #[arg(long, default_value_t = 4)]
    pub(crate) threads: usize,
    /// Most connections open at once; more are closed at once.
    #[arg(long, default_value_t = 16_384)]
    pub(crate) max_connections: usize,
    /// Time a client has to send a request's headers.
    #[arg(long, default_value = "10s")]
    pub(crate) header_timeout: String,
}

#[derive(Args)]
pub(crate) struct DrillArgs {
    /// Gateways (threads with their own verifier, polling the publish directory).
    #[arg(long, default_value_t = 8)]
    pub(crate) gateways: usize,
    /// Clients sending requests.
    #[arg(long, default_value_t = 50)]
    pub(crate) clients: usize,
    /// Gateway poll interval.
    #[arg(long, default_value = "1s")]
    pub(crate) poll: String,
    /// `rotation-breach-bad-push` (the default), or `new-keys`: how soon new
    /// and rotated keys work at every gateway, at scale, from the update.
    #[arg(long, default_value = "rotation-breach-bad-push")]
    pub(crate) scenario: String,
    /// new-keys: keys in the store (and the snapshot) beside the new ones.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) keys: u64,
    /// new-keys: keys handed out during the drill (half of them rotations).
    #[arg(long, default_value_t = 40)]
    pub(crate) new_keys: usize,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    pub(crate) file: PathBuf,
}
