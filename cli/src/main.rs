//! `keygate`: the issuer CLI, a thin shell over `keygate_issuer`.

mod api;
mod demo;
mod drill;
mod listener;
mod serve;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use keygate::{Digest, KeyId, RevocationView, SnapshotView, Verdict, Verifier};
use keygate_issuer::{printable, IssueRequest, Issuer, IssuerError, RevokeTarget, StoreAt};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "Issue, rotate, revoke and publish API keys; verify them offline."
)]
struct Cli {
    /// The store: a directory (SQLite: keygate.db and the signing keys) or
    /// a PostgreSQL URL (`postgres://user@host/db`) shared by several
    /// instances.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_STORE",
        default_value = "./keygate-store"
    )]
    store: String,
    /// A PostgreSQL store's seal key (64 hex characters; `init` creates the
    /// file when missing): its signing keys are stored sealed under it.
    #[arg(long, global = true, env = "KEYGATE_SEAL_KEY_FILE")]
    seal_key_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Who is acting, for the audit log (default: the OS user).
    #[arg(long, global = true, env = "KEYGATE_ACTOR")]
    actor: Option<String>,
    /// Pretend it is this time (unix seconds or RFC 3339): for tests and
    /// drills only — keys and artifacts made under it carry the false time.
    #[arg(
        long = "dangerous-clock",
        global = true,
        env = "KEYGATE_DANGEROUS_NOW",
        hide = true
    )]
    clock: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new store with its first signing key.
    Init {
        #[arg(long)]
        keyset: String,
        #[arg(long)]
        prefix: String,
    },
    /// Issue a key (printed exactly once).
    Issue(IssueArgs),
    /// Issue a new key for a principal; its current keys become deprecated.
    Rotate(RotateArgs),
    /// Rotation policy classes (max-age, grace, rotate-before).
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// Principal settings.
    Principal {
        #[command(subcommand)]
        cmd: PrincipalCmd,
    },
    /// Keys due for rotation, expiring, or at sunset soon. Exit 1 when any are.
    Due {
        /// Look this far ahead.
        #[arg(long, default_value = "7d")]
        within: String,
    },
    /// Issuer metrics in Prometheus text.
    Metrics,
    /// Revoke keys immediately (idempotent).
    Revoke(RevokeArgs),
    /// List keys.
    List {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// A gateway's Prometheus export (`curl gw/metrics > gw.prom`), for the
        /// last use of deprecated keys; repeat for each gateway.
        #[arg(long, value_name = "FILE")]
        usage: Vec<PathBuf>,
    },
    /// Import existing keys by SHA-256 digest.
    Import(ImportArgs),
    /// Write snapshot.kgs, revocations.kgr and trust.kgt atomically.
    Publish {
        #[arg(long)]
        out: PathBuf,
        /// How long gateways may treat the artifacts as fresh.
        #[arg(long, default_value = "7d")]
        valid_for: String,
        /// Only a new revocation update against the last published snapshot.
        #[arg(long)]
        revocations_only: bool,
    },
    /// Verify a key against published artifacts, as a gateway would.
    Verify {
        #[arg(long)]
        trust: PathBuf,
        #[arg(long)]
        snapshot: PathBuf,
        #[arg(long)]
        revocations: Option<PathBuf>,
        #[arg(long)]
        scope: Option<String>,
        /// Unix seconds or RFC 3339 (default: now).
        #[arg(long)]
        now: Option<String>,
        /// The key, or `-` to read it from stdin.
        key: String,
    },
    /// Show header, counts, signer and validity of any artifact.
    Inspect { file: PathBuf },
    /// The audit chain.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Find keys of this keyset in files (never prints the secret).
    Scan {
        paths: Vec<PathBuf>,
        /// Revoke the active keys found (reason "leaked").
        #[arg(long)]
        revoke: bool,
        /// Skip files that .gitignore/.ignore exclude (by default they are
        /// scanned: an ignored .env is where a leaked key usually sits).
        #[arg(long)]
        respect_gitignore: bool,
    },
    /// Signing-key management.
    Signer {
        #[command(subcommand)]
        cmd: SignerCmd,
    },
    /// The issuer as an HTTP admin API (callers hold admin keys), publishing
    /// on its own with --publish-to.
    Api {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8790")]
        listen: String,
        /// Publish here on every change: revocations at once, new or
        /// rotated keys after --publish-delay.
        #[arg(long, value_name = "DIR")]
        publish_to: Option<PathBuf>,
        /// Run after every publish (with KEYGATE_PUBLISH_DIR set), e.g. to
        /// sync the directory to a bucket or CDN.
        #[arg(long, value_name = "CMD", requires = "publish_to")]
        publish_hook: Option<String>,
        /// How long a new or rotated key waits for a full publish (changes
        /// within it are published together).
        #[arg(long, default_value = "1s")]
        publish_delay: String,
        /// How often the fleet's gateways poll (for usable_at in answers).
        #[arg(long, default_value = "1s")]
        fleet_poll: String,
        /// Lifetime of published artifacts.
        #[arg(long, default_value = "7d")]
        valid_for: String,
        /// A full snapshot is rebuilt at least this often, changes or not
        /// (so published artifacts never come near the end of --valid-for).
        #[arg(long, default_value = "1h")]
        snapshot_every: String,
        /// A gateway's metrics URL (keygate serve's /metrics, the nginx
        /// keygate_metrics location, Envoy's /stats/prometheus), scraped by
        /// GET /v1/usage; repeat for each gateway.
        #[arg(long, value_name = "URL")]
        usage_from: Vec<String>,
        /// Most connections open at once.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Time a client has to send a request's headers.
        #[arg(long, default_value = "10s")]
        header_timeout: String,
        /// Worker threads.
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
    /// Create, list or revoke admin keys (for keygate api). The key is
    /// printed once.
    AdminKey {
        /// Who holds the new key.
        #[arg(long, conflicts_with_all = ["list", "revoke", "rotate"])]
        principal: Option<String>,
        /// Scopes of the new key: keys:read, keys:write, keys:revoke,
        /// audit:read, publish, metrics:read.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// List the admin keys.
        #[arg(long)]
        list: bool,
        /// Revoke this admin key (id).
        #[arg(long, value_name = "KEY_ID", conflicts_with = "rotate")]
        revoke: Option<String>,
        /// Rotate this admin key (id): a new key with its principal and
        /// scopes, printed once; the old one works for --grace more.
        #[arg(long, value_name = "KEY_ID")]
        rotate: Option<String>,
        /// How long a rotated admin key keeps working.
        #[arg(long, default_value = "1d", requires = "rotate")]
        grace: String,
    },
    /// Forward-auth HTTP service (nginx auth_request, Traefik ForwardAuth,
    /// Envoy ext_authz, Caddy forward_auth).
    Serve {
        /// Address to listen on: every request here is an authorization question.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
        /// Address for /healthz and /metrics (none unless given): a separate
        /// listener, so no forwarded request can reach them.
        #[arg(long)]
        metrics_listen: Option<String>,
        /// The pinned trust anchor (a local .kgt). Required: artifacts come
        /// over untrusted channels, so the origin may only serve newer trust
        /// bundles that chain from this one.
        #[arg(long)]
        trust: PathBuf,
        /// Snapshot file.
        #[arg(long, required_unless_present_any = ["artifacts_dir", "artifacts_url"])]
        snapshot: Option<PathBuf>,
        /// Revocation update file.
        #[arg(long)]
        revocations: Option<PathBuf>,
        /// A publish directory holding snapshot.kgs, revocations.kgr (and
        /// trust.kgt, followed from the pinned --trust).
        #[arg(long, conflicts_with_all = ["snapshot", "revocations", "artifacts_url"])]
        artifacts_dir: Option<PathBuf>,
        /// A URL serving trust.kgt, snapshot.kgs, revocations.kgr (a static
        /// origin, bucket or CDN), polled with If-None-Match.
        #[arg(long, conflicts_with_all = ["snapshot", "revocations"])]
        artifacts_url: Option<String>,
        /// How often to re-read the artifacts.
        #[arg(long, default_value = "1s")]
        poll: String,
        /// Required scope.
        #[arg(long)]
        scope: Option<String>,
        /// Take the required scope from the X-Keygate-Scope request header
        /// when present (only behind a front proxy that sets it and removes
        /// any client copy; otherwise a client picks its own scope).
        #[arg(long)]
        trust_scope_header: bool,
        /// Persist the highest versions installed here, so a restart cannot
        /// be rolled back to older signed artifacts.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Realm in WWW-Authenticate.
        #[arg(long, default_value = "keygate")]
        realm: String,
        /// Worker threads.
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Most connections open at once; more are closed at once.
        #[arg(long, default_value_t = 16_384)]
        max_connections: usize,
        /// Time a client has to send a request's headers.
        #[arg(long, default_value = "10s")]
        header_timeout: String,
    },
    /// A simulated fleet under traffic: rotation, breach and bad-push drills.
    Drill {
        /// Gateways (threads with their own verifier, polling the publish directory).
        #[arg(long, default_value_t = 8)]
        gateways: usize,
        /// Clients sending requests.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Gateway poll interval.
        #[arg(long, default_value = "1s")]
        poll: String,
    },
    /// Run the whole issue → publish → verify → rotate → revoke cycle in a
    /// temporary store and show what happened.
    Demo,
}

#[derive(Args)]
struct IssueArgs {
    #[arg(long)]
    principal: String,
    #[arg(long = "scope")]
    scopes: Vec<String>,
    #[arg(long)]
    expires: Option<String>,
    #[arg(long)]
    not_before: Option<String>,
    /// Issue this many keys (bulk); needs --keys-out.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Write the keys here, one per line (mode 0600).
    #[arg(long)]
    keys_out: Option<PathBuf>,
    /// Put the principal in this policy class (its max-age sets the expiry).
    #[arg(long)]
    class: Option<String>,
}

#[derive(Args)]
struct RotateArgs {
    /// The principal to rotate (or --key-id for one of its keys, or --due for
    /// every principal with a due key).
    #[arg(long, required_unless_present_any = ["due", "key_id"], conflicts_with_all = ["due", "key_id"])]
    principal: Option<String>,
    /// Rotate only this key (id): a new key for its principal, only this one
    /// deprecated — for a principal with a key per region or instance.
    #[arg(long, conflicts_with = "due")]
    key_id: Option<String>,
    /// Grace window before the old keys stop working (default: the class's, else 7d).
    #[arg(long)]
    grace: Option<String>,
    /// Put the principal in this policy class first.
    #[arg(long, requires = "principal")]
    class: Option<String>,
    /// Rotate every principal with a key due within --within.
    #[arg(long)]
    due: bool,
    /// With --due: the window.
    #[arg(long, default_value = "7d", requires = "due")]
    within: String,
    /// With --due: show what would be rotated, change nothing.
    #[arg(long, requires = "due")]
    dry_run: bool,
    /// With --due: write the new keys here ("principal key" per line, mode 0600)
    /// instead of printing them.
    #[arg(long, requires = "due")]
    keys_out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PolicyCmd {
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
enum PrincipalCmd {
    /// Put a principal in a policy class.
    Set {
        principal: String,
        #[arg(long)]
        class: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "target")]
struct RevokeTargetArgs {
    #[arg(long)]
    key_id: Option<String>,
    /// The key itself (`-` reads it from stdin).
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    principal: Option<String>,
    /// A file of key ids, one per line.
    #[arg(long)]
    from: Option<PathBuf>,
}

#[derive(Args)]
struct RevokeArgs {
    #[command(flatten)]
    target: RevokeTargetArgs,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Args)]
struct ImportArgs {
    #[arg(long, required_unless_present = "from")]
    principal: Option<String>,
    /// SHA-256 of the existing key, 64 hex digits.
    #[arg(long, requires = "principal")]
    sha256: Option<String>,
    #[arg(long = "scope")]
    scopes: Vec<String>,
    #[arg(long)]
    expires_at: Option<String>,
    /// JSON lines: {"principal": .., "sha256": .., "scopes": [..], "expires_at": ..}
    #[arg(long, conflicts_with = "sha256")]
    from: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AuditCmd {
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
enum SignerCmd {
    /// New signing key; gateways follow through the trust-bundle chain.
    Rotate,
}

/// A CLI failure: the message and the exit code.
struct Fail(u8, String);

impl From<IssuerError> for Fail {
    fn from(e: IssuerError) -> Self {
        // The exit-code policy is the CLI's: 2 for what the caller can
        // fix in its input, 3 for the store or the system.
        let input = matches!(
            e,
            IssuerError::Invalid(_)
                | IssuerError::NotFound(_)
                | IssuerError::Conflict(_)
                | IssuerError::NoStore(_)
                | IssuerError::AlreadyInitialized(_)
                | IssuerError::Artifact(_)
        );
        Fail(if input { 2 } else { 3 }, e.to_string())
    }
}

fn input(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

type Res<T> = Result<T, Fail>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The old spelling is refused, not ignored: a harness that still sets it
    // would otherwise run on the real clock without noticing.
    if std::env::var_os("KEYGATE_NOW").is_some() {
        eprintln!(
            "keygate: KEYGATE_NOW is no longer read; tests and drills set KEYGATE_DANGEROUS_NOW"
        );
        return ExitCode::from(2);
    }
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("keygate: {msg}");
            ExitCode::from(code)
        }
    }
}

pub(crate) fn parse_duration(s: &str) -> Res<u64> {
    Ok(keygate_issuer::parse_duration(s)?)
}

pub(crate) fn parse_time(s: &str) -> Res<u64> {
    Ok(keygate_issuer::parse_time(s)?)
}

/// RFC 3339 for times humantime can show (to year 9999); a later one, which
/// only a hostile artifact or export holds, as its number of seconds.
fn fmt_time(t: Option<u64>) -> String {
    const YEAR_9999_END: u64 = 253_402_300_799;
    match t {
        None => "-".into(),
        Some(t) if t > YEAR_9999_END => format!("@{t}"),
        Some(t) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t))
                .to_string()
        }
    }
}

fn actor(cli: &Cli) -> String {
    cli.actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn store_at(cli: &Cli) -> StoreAt {
    StoreAt::parse(&cli.store).with_seal_key_file(cli.seal_key_file.clone())
}

fn open(cli: &Cli) -> Res<Issuer> {
    let mut i = Issuer::open_at(&store_at(cli), &actor(cli))?;
    i.set_now(cli.clock.as_deref().map(parse_time).transpose()?);
    Ok(i)
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn read_key_arg(k: &str) -> Res<String> {
    if k != "-" {
        return Ok(k.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| input(format!("reading key from stdin: {e}")))?;
    Ok(line.trim().to_string())
}

fn run(cli: &Cli) -> Res<u8> {
    match &cli.cmd {
        Cmd::Init { keyset, prefix } => {
            let at = store_at(cli);
            let mut i = Issuer::init_at(&at, keyset, prefix, &actor(cli))?;
            i.set_now(cli.clock.as_deref().map(parse_time).transpose()?);
            let info = i.info()?;
            if cli.json {
                print_json(
                    &json!({"store": at.to_string(), "keyset": info.keyset, "prefix": info.prefix}),
                );
            } else {
                println!(
                    "initialized keyset '{}' (prefix {}) in {}",
                    info.keyset, info.prefix, at
                );
            }
            Ok(0)
        }
        Cmd::Issue(a) => issue(cli, a),
        Cmd::Rotate(a) => rotate(cli, a),
        Cmd::Policy { cmd } => {
            let mut i = open(cli)?;
            match cmd {
                PolicyCmd::Set {
                    class,
                    max_age,
                    grace,
                    rotate_before,
                } => {
                    let p = keygate_issuer::Policy {
                        class: class.clone(),
                        max_age: parse_duration(max_age)?,
                        grace: parse_duration(grace)?,
                        rotate_before: rotate_before.as_deref().map(parse_duration).transpose()?,
                    };
                    i.set_policy(&p)?;
                    if cli.json {
                        print_json(&json!(p));
                    } else {
                        println!("policy {class}: max-age {max_age}, grace {grace}");
                    }
                }
                PolicyCmd::List => {
                    let ps = i.policies()?;
                    if cli.json {
                        print_json(&json!(ps));
                    } else {
                        println!(
                            "{:<16} {:>10} {:>10} {:>14}",
                            "CLASS", "MAX-AGE", "GRACE", "ROTATE-BEFORE"
                        );
                        for p in ps {
                            let d = |s: u64| {
                                humantime::format_duration(Duration::from_secs(s)).to_string()
                            };
                            println!(
                                "{:<16} {:>10} {:>10} {:>14}",
                                p.class,
                                d(p.max_age),
                                d(p.grace),
                                d(p.rotate_before.unwrap_or(p.grace))
                            );
                        }
                    }
                }
            }
            Ok(0)
        }
        Cmd::Principal {
            cmd: PrincipalCmd::Set { principal, class },
        } => {
            let mut i = open(cli)?;
            i.set_principal_class(principal, class)?;
            if cli.json {
                print_json(&json!({"principal": principal, "class": class}));
            } else {
                println!("principal {principal} is in class {class}");
            }
            Ok(0)
        }
        Cmd::Due { within } => {
            let within = parse_duration(within)?;
            let i = open(cli)?;
            let due = i.due(within)?;
            if cli.json {
                print_json(&json!(due));
            } else if due.is_empty() {
                println!("nothing due");
            } else {
                println!(
                    "{:<32}  {:<20}  {:<10}  {:<10}  {:<13}  {:<20}  {:>9}",
                    "KEY ID", "PRINCIPAL", "CLASS", "STATUS", "REASON", "DUE", "DAYS LEFT"
                );
                for d in &due {
                    println!(
                        "{:<32}  {:<20}  {:<10}  {:<10}  {:<13}  {:<20}  {:>9}",
                        d.key_id,
                        d.principal,
                        d.class.as_deref().unwrap_or("-"),
                        d.status,
                        d.reason,
                        fmt_time(Some(d.due_at)),
                        d.days_left
                    );
                }
            }
            Ok(if due.is_empty() { 0 } else { 1 })
        }
        Cmd::Metrics => {
            let i = open(cli)?;
            print!("{}", i.metrics()?);
            Ok(0)
        }
        Cmd::Revoke(a) => revoke(cli, a),
        Cmd::List {
            principal,
            status,
            usage,
        } => {
            let i = open(cli)?;
            let status = status.as_deref().map(str::parse).transpose()?;
            let keys = i.list(principal.as_deref(), status)?;
            let mut report = keygate_issuer::UsageReport::default();
            for f in usage {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| input(format!("{}: {e}", f.display())))?;
                report.add_export(&f.display().to_string(), &text)?;
            }
            let used = |id: &str| report.get(id).filter(|_| !usage.is_empty());
            if cli.json {
                let rows: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        let mut v = json!(k);
                        if !usage.is_empty() {
                            let u = used(&k.key_id);
                            v["last_used_at"] = json!(u.map(|u| u.last_seen));
                            v["uses"] = json!(u.map(|u| u.uses));
                        }
                        v
                    })
                    .collect();
                print_json(&json!(rows));
            } else {
                println!(
                    "{:<32}  {:<20}  {:<10}  {:<20}  {:<20}  {:<20}  LAST USE",
                    "KEY ID", "PRINCIPAL", "STATUS", "CREATED", "EXPIRES", "SUNSET"
                );
                for k in &keys {
                    let last = used(&k.key_id).map_or("-".to_string(), |u| {
                        format!("{} ({} uses)", fmt_time(Some(u.last_seen)), u.uses)
                    });
                    println!(
                        "{:<32}  {:<20}  {:<10}  {:<20}  {:<20}  {:<20}  {last}",
                        k.key_id,
                        printable(&k.principal),
                        k.status,
                        fmt_time(Some(k.created_at)),
                        fmt_time(k.expires_at),
                        fmt_time(k.sunset_at)
                    );
                }
                if usage.is_empty() {
                    eprintln!("(last use: gateways count deprecated keys; pass their /metrics exports with --usage FILE)");
                }
            }
            Ok(0)
        }
        Cmd::Import(a) => import(cli, a),
        Cmd::Publish {
            out,
            valid_for,
            revocations_only,
        } => {
            let valid_for = parse_duration(valid_for)?;
            let mut i = open(cli)?;
            let r = if *revocations_only {
                i.publish_revocations(out, valid_for)?
            } else {
                i.publish(out, valid_for)?
            };
            if cli.json {
                print_json(&json!(r));
            } else if *revocations_only {
                println!(
                    "published revocations.kgr: base snapshot v{}, sequence {}, {} revoked, {} bytes -> {}",
                    r.snapshot_version, r.revocation_seq, r.revoked_in_update, r.revocations_bytes, out.display()
                );
            } else {
                println!(
                    "published snapshot v{} ({} keys, {} bytes), revocations seq {}, trust v{} -> {}",
                    r.snapshot_version, r.keys, r.snapshot_bytes, r.revocation_seq, r.trust_version, out.display()
                );
            }
            Ok(0)
        }
        Cmd::Verify {
            trust,
            snapshot,
            revocations,
            scope,
            now,
            key,
        } => {
            let read =
                |p: &Path| std::fs::read(p).map_err(|e| input(format!("{}: {e}", p.display())));
            let v = Verifier::new(&read(trust)?)
                .map_err(|e| input(format!("{}: {e}", trust.display())))?;
            v.install_snapshot(&read(snapshot)?)
                .map_err(|e| input(format!("{}: {e}", snapshot.display())))?;
            if let Some(r) = revocations {
                v.install_revocations(&read(r)?)
                    .map_err(|e| input(format!("{}: {e}", r.display())))?;
            }
            let key = read_key_arg(key)?;
            let d = match now {
                Some(t) => v.verify(&key, parse_time(t)?, scope.as_deref()),
                None => v.verify_now(&key, scope.as_deref()),
            };
            if cli.json {
                print_json(&verdict_json(&d));
            } else {
                print_verdict(&d);
            }
            Ok(if d.outcome.is_accepted() { 0 } else { 1 })
        }
        Cmd::Inspect { file } => inspect(cli, file),
        Cmd::Audit { cmd } => {
            let i = open(cli)?;
            match cmd {
                AuditCmd::Verify { snapshot } => {
                    let r = match snapshot {
                        Some(f) => i.audit_verify_against(
                            &std::fs::read(f)
                                .map_err(|e| input(format!("{}: {e}", f.display())))?,
                        )?,
                        None => i.audit_verify()?,
                    };
                    if cli.json {
                        print_json(&json!(r));
                    }
                    match &r.first_bad {
                        None => {
                            if !cli.json {
                                println!(
                                    "audit chain intact: {} entries, head {}; {} key rows match it{}",
                                    r.entries,
                                    r.head,
                                    r.keys,
                                    r.signed_snapshot.map_or(String::new(), |v| format!(
                                        "; holds the head signed into snapshot v{v}"
                                    ))
                                );
                            }
                            Ok(0)
                        }
                        Some((0, why)) => Err(Fail(1, format!("audit check failed: {why}"))),
                        Some((seq, why)) => {
                            Err(Fail(1, format!("audit chain broken at entry {seq}: {why}")))
                        }
                    }
                }
                AuditCmd::Log => {
                    let log = i.audit_log()?;
                    if cli.json {
                        print_json(&json!(log));
                    } else {
                        for e in log {
                            println!(
                                "{:>5}  {}  {:<10} {:<20} {:<32} {:<20} {}",
                                e.seq,
                                fmt_time(Some(e.at)),
                                printable(&e.actor),
                                printable(&e.action),
                                printable(e.key_id.as_deref().unwrap_or("-")),
                                printable(e.principal.as_deref().unwrap_or("-")),
                                printable(e.reason.as_deref().unwrap_or(""))
                            );
                        }
                    }
                    Ok(0)
                }
            }
        }
        Cmd::Scan {
            paths,
            revoke,
            respect_gitignore,
        } => {
            if paths.is_empty() {
                return Err(input("scan needs at least one PATH"));
            }
            let mut i = open(cli)?;
            let opts = keygate_issuer::ScanOptions {
                respect_gitignore: *respect_gitignore,
            };
            // Findings are printed as they are found: a scan of a huge tree
            // or log holds no list of them. (Write errors, e.g. a closed
            // pipe, do not stop a scan that may be revoking.)
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut shown = 0u64;
            let r = i.scan(paths, &opts, *revoke, |f| {
                let _ = if cli.json {
                    let sep = if shown == 0 { "[\n  " } else { ",\n  " };
                    write!(out, "{sep}{}", serde_json::to_string(f).unwrap_or_default())
                } else {
                    writeln!(
                        out,
                        "{}:{}  {}  {}  {}",
                        printable(&f.path.to_string_lossy()),
                        f.line,
                        f.key_id,
                        f.status,
                        printable(f.principal.as_deref().unwrap_or("-"))
                    )
                };
                shown += 1;
            });
            if cli.json {
                let _ = writeln!(out, "{}", if shown == 0 { "[]" } else { "\n]" });
            }
            let _ = out.flush();
            drop(out);
            let r = r?;
            if !cli.json {
                eprintln!(
                    "{} key(s) found{}",
                    r.findings,
                    if *revoke {
                        format!(", {} revoked", r.revoked)
                    } else {
                        String::new()
                    }
                );
            }
            for u in &r.unreadable {
                eprintln!(
                    "keygate: scan: cannot read {}: {}",
                    printable(&u.path.to_string_lossy()),
                    printable(&u.error)
                );
            }
            if !r.unreadable.is_empty() {
                return Err(Fail(
                    3,
                    format!(
                        "scan incomplete: {} path(s) could not be read",
                        r.unreadable.len()
                    ),
                ));
            }
            Ok(0)
        }
        Cmd::Signer {
            cmd: SignerCmd::Rotate,
        } => {
            let mut i = open(cli)?;
            let r = i.rotate_signer()?;
            if cli.json {
                print_json(&json!(r));
            } else {
                println!(
                    "new signer {}; trust bundle v{} lists it beside {} (retired after the next two publishes)",
                    r.new_signer, r.trust_version, r.retiring
                );
            }
            Ok(0)
        }
        Cmd::Demo => demo::run(cli.json),
        Cmd::Api {
            listen,
            publish_to,
            publish_hook,
            publish_delay,
            fleet_poll,
            valid_for,
            snapshot_every,
            usage_from,
            max_connections,
            header_timeout,
            threads,
        } => {
            let duration = |what: &str, s: &str| {
                humantime::parse_duration(s).map_err(|e| input(format!("bad {what} {s:?}: {e}")))
            };
            api::run(api::Settings {
                listen: listen.clone(),
                store: store_at(cli),
                publish_to: publish_to.clone(),
                publish_hook: publish_hook.clone(),
                publish_delay: duration("publish delay", publish_delay)?,
                fleet_poll: duration("fleet poll", fleet_poll)?,
                valid_for: duration("valid-for", valid_for)?.as_secs(),
                snapshot_every: duration("snapshot-every", snapshot_every)?,
                usage_from: usage_from.clone(),
                max_connections: *max_connections,
                header_timeout: duration("header timeout", header_timeout)?,
                threads: *threads,
            })
        }
        Cmd::AdminKey {
            principal,
            scopes,
            list,
            revoke,
            rotate,
            grace,
        } => {
            let mut i = open(cli)?;
            if *list {
                let keys = i.admin_keys()?;
                if cli.json {
                    println!("{}", serde_json::to_string(&keys).unwrap_or_default());
                } else {
                    for k in keys {
                        let state = match (k.revoked_at, k.expires_at) {
                            (Some(_), _) => "revoked".to_string(),
                            (None, Some(t)) => {
                                format!("rotated, works until {}", fmt_time(Some(t)))
                            }
                            (None, None) => "active".to_string(),
                        };
                        println!(
                            "{}  {}  {}  {state}",
                            k.key_id,
                            printable(&k.principal),
                            k.scopes.join(",")
                        );
                    }
                }
                return Ok(0);
            }
            if let Some(id) = revoke {
                let id = KeyId::from_hex(id).ok_or_else(|| input("a key id is 32 hex digits"))?;
                let k = i.revoke_admin_key(&id)?;
                if cli.json {
                    println!("{}", serde_json::to_string(&k).unwrap_or_default());
                } else {
                    println!("revoked admin key {}", k.key_id);
                }
                return Ok(0);
            }
            let k = if let Some(id) = rotate {
                let id = KeyId::from_hex(id).ok_or_else(|| input("a key id is 32 hex digits"))?;
                let grace = humantime::parse_duration(grace)
                    .map_err(|e| input(format!("bad --grace {grace:?}: {e}")))?;
                i.rotate_admin_key(&id, grace.as_secs())?
            } else {
                let principal = principal.as_deref().ok_or_else(|| {
                    input("admin-key needs --principal (or --list, --revoke, --rotate)")
                })?;
                i.create_admin_key(principal, scopes)?
            };
            let principal = &k.info.principal;
            if cli.json {
                println!(
                    "{}",
                    json!({"key": k.key.expose_secret(), "key_id": k.info.key_id, "principal": k.info.principal, "scopes": k.info.scopes})
                );
            } else {
                println!("{}", k.key.expose_secret());
                eprintln!(
                    "admin key {} for {} ({}); shown once",
                    k.info.key_id,
                    printable(principal),
                    k.info.scopes.join(",")
                );
            }
            Ok(0)
        }
        Cmd::Serve {
            listen,
            metrics_listen,
            trust,
            snapshot,
            revocations,
            artifacts_dir,
            artifacts_url,
            poll,
            scope,
            trust_scope_header,
            state,
            realm,
            threads,
            max_connections,
            header_timeout,
        } => {
            let sources = match (artifacts_dir, artifacts_url) {
                (_, Some(u)) => serve::Sources::url(u),
                (Some(d), None) => serve::Sources::Files {
                    trust: Some(d.join(keygate::Artifact::Trust.file_name())),
                    snapshot: d.join(keygate::Artifact::Snapshot.file_name()),
                    revocations: Some(d.join(keygate::Artifact::Revocations.file_name())),
                },
                (None, None) => serve::Sources::Files {
                    // The pinned file is re-read: an operator may append
                    // newer bundles to it.
                    trust: Some(trust.clone()),
                    snapshot: snapshot
                        .clone()
                        .ok_or_else(|| input("serve needs --snapshot or --artifacts-dir"))?,
                    revocations: revocations.clone(),
                },
            };
            let duration = |what: &str, s: &str| {
                humantime::parse_duration(s).map_err(|e| input(format!("bad {what} {s:?}: {e}")))
            };
            keygate::Policy::new(realm, "x-keygate-principal", serve::RETRY_AFTER)
                .map_err(|e| input(format!("bad --realm: {e}")))?;
            serve::run(serve::Settings {
                listen: listen.clone(),
                metrics_listen: metrics_listen.clone(),
                trust: trust.clone(),
                sources,
                reload: std::sync::Mutex::new(keygate::Reload::new()),
                poll: duration("poll", poll)?,
                scope: scope.clone(),
                trust_scope_header: *trust_scope_header,
                realm: realm.clone(),
                threads: *threads,
                max_connections: *max_connections,
                header_timeout: duration("header timeout", header_timeout)?,
                state: state.clone(),
            })
        }
        Cmd::Drill {
            gateways,
            clients,
            poll,
        } => {
            if *gateways == 0 || *clients < 10 {
                return Err(input("drill needs at least 1 gateway and 10 clients"));
            }
            let poll = humantime::parse_duration(poll)
                .map_err(|e| input(format!("bad poll {poll:?}: {e}")))?;
            drill::run(&drill::Settings {
                gateways: *gateways,
                clients: *clients,
                poll,
                json: cli.json,
            })
        }
    }
}

pub(crate) fn verdict_json(d: &Verdict) -> Value {
    json!({
        "outcome": d.outcome.as_str(),
        "principal": d.principal.as_str(),
        "key_id": d.key_id.map(|k| k.to_string()),
        "expires_at": d.expires_at,
        "deprecated_at": d.deprecated_at,
        "sunset_at": d.sunset_at,
        "snapshot_version": d.snapshot_version,
        "revocation_seq": d.revocation_seq,
        "stale": d.stale,
    })
}

fn print_verdict(d: &Verdict) {
    println!("outcome           {}", d.outcome);
    println!(
        "principal         {}",
        if d.principal.as_str().is_empty() {
            "-"
        } else {
            d.principal.as_str()
        }
    );
    println!(
        "key_id            {}",
        d.key_id.map_or("-".into(), |k| k.to_string())
    );
    println!("expires_at        {}", fmt_time(d.expires_at));
    println!("deprecated_at     {}", fmt_time(d.deprecated_at));
    println!("sunset_at         {}", fmt_time(d.sunset_at));
    println!("snapshot_version  {}", d.snapshot_version);
    println!("revocation_seq    {}", d.revocation_seq);
    println!("stale             {}", d.stale);
}

fn issue(cli: &Cli, a: &IssueArgs) -> Res<u8> {
    let req = IssueRequest {
        principal: a.principal.clone(),
        scopes: a.scopes.clone(),
        expires_in: a.expires.as_deref().map(parse_duration).transpose()?,
        not_before: a.not_before.as_deref().map(parse_time).transpose()?,
        class: a.class.clone(),
    };
    if a.count > 1 && a.keys_out.is_none() {
        return Err(input(
            "--count above 1 needs --keys-out FILE (keys are never printed in bulk)",
        ));
    }
    let mut i = open(cli)?;
    if let Some(path) = &a.keys_out {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| input(format!("{}: {e}", path.display())))?;
        let bar = (std::io::stderr().is_terminal() && a.count > 1)
            .then(|| indicatif::ProgressBar::new(a.count));
        let keys = i.issue_many(&req, a.count, |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        });
        let keys = match keys {
            Ok(k) => k,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let mut text = String::with_capacity(keys.len() * 50);
        for k in &keys {
            text.push_str(k.key.expose_secret());
            text.push('\n');
        }
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Fail(3, format!("{}: {e}", path.display())))?;
        if cli.json {
            print_json(
                &json!({"count": keys.len(), "keys_out": path, "principal": a.principal, "key_ids": keys.iter().map(|k| &k.info.key_id).collect::<Vec<_>>()}),
            );
        } else {
            println!(
                "issued {} keys for {} -> {} (mode 0600)",
                keys.len(),
                a.principal,
                path.display()
            );
        }
        return Ok(0);
    }
    let k = i.issue(&req)?;
    if cli.json {
        print_json(&json!({
            "key": k.key.expose_secret(), "key_id": k.info.key_id, "principal": k.info.principal,
            "scopes": k.info.scopes, "expires_at": k.info.expires_at,
        }));
    } else {
        println!("{}", k.key.expose_secret());
        eprintln!(
            "key {} for {}; this is the only time the key is shown",
            k.info.key_id, k.info.principal
        );
    }
    Ok(0)
}

fn rotate(cli: &Cli, a: &RotateArgs) -> Res<u8> {
    let grace = a.grace.as_deref().map(parse_duration).transpose()?;
    let mut i = open(cli)?;
    if a.due {
        let within = parse_duration(&a.within)?;
        let mut out = match &a.keys_out {
            Some(path) if !a.dry_run => {
                use std::os::unix::fs::OpenOptionsExt;
                Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)
                        .map_err(|e| input(format!("{}: {e}", path.display())))?,
                )
            }
            _ => None,
        };
        let done = i.rotate_due(within, a.dry_run)?;
        let mut text = String::new();
        for r in &done {
            if let Some(k) = &r.new_key {
                text += &format!("{} {}\n", r.principal, k.key.expose_secret());
            }
        }
        if let Some(f) = &mut out {
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| Fail(3, e.to_string()))?;
        }
        if cli.json {
            let keys: Vec<Value> = done
                .iter()
                .map(|r| {
                    let mut v = json!(r);
                    if out.is_none() {
                        if let Some(k) = &r.new_key {
                            v["key"] = json!(k.key.expose_secret());
                        }
                    }
                    v
                })
                .collect();
            print_json(&json!(keys));
        } else {
            for r in &done {
                let what = if a.dry_run { "would rotate" } else { "rotated" };
                eprintln!(
                    "{what} {} (class {}, grace {}): due {}",
                    r.principal,
                    r.class.as_deref().unwrap_or("-"),
                    humantime::format_duration(Duration::from_secs(r.grace)),
                    r.due_keys.join(", ")
                );
            }
            if out.is_none() {
                print!("{text}");
            }
            if done.is_empty() {
                eprintln!("nothing due");
            }
        }
        return Ok(0);
    }
    let (new, old) = if let Some(id) = &a.key_id {
        let id = KeyId::from_hex(id).ok_or_else(|| input("a key id is 32 hex digits"))?;
        i.rotate_key(&id, grace)?
    } else {
        let Some(principal) = &a.principal else {
            return Err(input("rotate needs --principal P, --key-id ID or --due"));
        };
        if let Some(c) = &a.class {
            i.set_principal_class(principal, c)?;
        }
        i.rotate(principal, grace)?
    };
    if cli.json {
        print_json(&json!({
            "key": new.key.expose_secret(), "key_id": new.info.key_id, "principal": new.info.principal,
            "scopes": new.info.scopes, "expires_at": new.info.expires_at, "deprecated": old,
        }));
    } else {
        println!("{}", new.key.expose_secret());
        eprintln!(
            "new key {} for {}; this is the only time the key is shown",
            new.info.key_id,
            printable(&new.info.principal)
        );
        for o in &old {
            eprintln!("deprecated {} (sunset {})", o.key_id, fmt_time(o.sunset_at));
        }
    }
    Ok(0)
}

fn revoke(cli: &Cli, a: &RevokeArgs) -> Res<u8> {
    let t = &a.target;
    let target = if let Some(id) = &t.key_id {
        RevokeTarget::Ids(vec![KeyId::from_hex(id)
            .ok_or_else(|| input(format!("bad key id {id:?}: want 32 hex digits")))?])
    } else if let Some(k) = &t.key {
        RevokeTarget::Ids(vec![Digest::of(read_key_arg(k)?.as_bytes()).key_id()])
    } else if let Some(p) = &t.principal {
        RevokeTarget::Principal(p.clone())
    } else if let Some(f) = &t.from {
        let text =
            std::fs::read_to_string(f).map_err(|e| input(format!("{}: {e}", f.display())))?;
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            ids.push(
                KeyId::from_hex(l)
                    .ok_or_else(|| input(format!("{}:{}: not a key id", f.display(), n + 1)))?,
            );
        }
        RevokeTarget::Ids(ids)
    } else {
        return Err(input(
            "revoke needs one of --key-id, --key, --principal, --from",
        ));
    };
    let mut i = open(cli)?;
    let r = i.revoke(&target, a.reason.as_deref())?;
    if cli.json {
        print_json(&json!(r));
    } else {
        for x in &r {
            println!(
                "{} {} ({})",
                if x.already_revoked {
                    "already revoked"
                } else {
                    "revoked"
                },
                x.key_id,
                x.principal
            );
        }
        eprintln!("publish the fast update with: keygate publish --out DIR --revocations-only");
    }
    Ok(0)
}

fn import(cli: &Cli, a: &ImportArgs) -> Res<u8> {
    // Every line is parsed and checked before anything changes.
    let items = if let Some(f) = &a.from {
        let text =
            std::fs::read_to_string(f).map_err(|e| input(format!("{}: {e}", f.display())))?;
        keygate_issuer::parse_import_lines(&text, &f.display().to_string())?
    } else {
        let (Some(p), Some(h)) = (&a.principal, &a.sha256) else {
            return Err(input(
                "import needs --principal and --sha256, or --from FILE",
            ));
        };
        let expires_at = a.expires_at.as_deref().map(parse_time).transpose()?;
        vec![keygate_issuer::Import::new(p, h, &a.scopes, expires_at)?]
    };
    let mut i = open(cli)?;
    let out = i.import_many(&items)?;
    if cli.json {
        print_json(&json!(out));
    } else {
        for k in &out {
            println!("imported {} for {}", k.key_id, k.principal);
        }
    }
    Ok(0)
}

fn inspect(cli: &Cli, file: &Path) -> Res<u8> {
    let b = std::fs::read(file).map_err(|e| input(format!("{}: {e}", file.display())))?;
    let v: Value = match b.get(..4) {
        Some(b"KGS\0") => {
            let s = SnapshotView::parse_unverified(&b)
                .map_err(|e| input(format!("{}: {e}", file.display())))?;
            let h = s.header();
            let mut counts = [0u64; 3];
            for r in s.records() {
                counts[r.status() as usize] += 1;
            }
            json!({
                "artifact": "snapshot", "keyset": h.keyset.as_str(), "prefix": h.prefix.as_str(), "version": h.version,
                "created_at": h.created_at, "valid_until": h.valid_until, "signer": h.signer.to_string(),
                "audit_head": h.audit_head.iter().map(|x| format!("{x:02x}")).collect::<String>(),
                "keys": h.record_count, "imported": h.imported_count,
                "active": counts[0], "deprecated": counts[1], "revoked": counts[2],
                "scopes": s.scope_names().collect::<Vec<_>>(), "bytes": b.len(),
                "signature": "not checked (inspect reads untrusted files; use `keygate verify` with a trust file)",
            })
        }
        Some(b"KGR\0") => {
            let r = RevocationView::parse_unverified(&b)
                .map_err(|e| input(format!("{}: {e}", file.display())))?;
            let h = r.header();
            json!({
                "artifact": "revocations", "keyset": h.keyset.as_str(), "base_version": h.base_version,
                "sequence": h.sequence, "created_at": h.created_at, "valid_until": h.valid_until,
                "signer": h.signer.to_string(), "universe": h.universe_count, "revoked": h.revoked_count,
                "filter_bytes": h.filter_len(), "bytes": b.len(),
            })
        }
        Some(b"KGT\0") => {
            let t = keygate::TrustSet::from_chain(&b)
                .map_err(|e| input(format!("{}: {e}", file.display())))?;
            json!({
                "artifact": "trust", "keyset": t.keyset().as_str(), "version": t.version(), "created_at": t.created_at(),
                "signers": t.signers().iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
                "signature": "chain verified from its first bundle", "bytes": b.len(),
            })
        }
        _ => {
            return Err(input(format!(
                "{}: not a keygate artifact (unknown magic)",
                file.display()
            )))
        }
    };
    if cli.json {
        print_json(&v);
    } else if let Value::Object(m) = v {
        for (k, val) in m {
            let s = match val {
                Value::String(s) => s,
                Value::Number(n) if k.ends_with("_at") || k.ends_with("until") => {
                    format!("{} ({})", n, fmt_time(n.as_u64()))
                }
                other => other.to_string(),
            };
            println!("{k:<14} {s}");
        }
    }
    Ok(0)
}
