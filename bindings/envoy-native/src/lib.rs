//! keygate as an Envoy **dynamic module**: a native HTTP filter (no VM) for
//! Envoy 1.40, built on the ABI declared in `abi.rs`. The filter reads the
//! request headers in place, verifies with one [`Verifier`] shared by every
//! worker thread, and answers by the core's gateway contract
//! ([`keygate::Answer`]) exactly as the proxy-wasm filter does: the key from
//! `Authorization: Bearer` or `X-API-Key`; every key-bearing header and every
//! client copy of the principal header removed before the request goes
//! upstream; `Deprecation`/`Sunset` on the response for a rotated key.
//!
//! Artifacts are loaded by a background thread, from a publish directory or
//! polled from a static HTTP origin, by the core's reload discipline
//! ([`keygate::Reload`]); a bad artifact changes nothing and is counted.
//! Metrics are reported as Envoy stats from the main thread after each poll.
//!
//! `filter_config` (a JSON string): `trust_path` (required: the pinned
//! anchor, `trust.kgt`), `artifacts_dir` or `artifacts_url` (one of them),
//! `poll_interval` (default `"1s"`), `scope`, `principal_header` (default
//! `x-keygate-principal`), `realm` (default `keygate`), `retry_after`
//! (seconds, default 5).

mod abi;

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi::*;
use keygate::{Answer, Origin, Outcome, Policy, Poller, Source, Verifier};
use serde::Deserialize;

/// The name a listener's `filter_name` must give.
const FILTER_NAME: &[u8] = b"keygate";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    trust_path: PathBuf,
    #[serde(default)]
    artifacts_dir: Option<PathBuf>,
    #[serde(default)]
    artifacts_url: Option<String>,
    #[serde(default = "default_poll")]
    poll_interval: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default = "default_principal_header")]
    principal_header: String,
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default = "default_retry_after")]
    retry_after: u32,
    /// Feature `bench` only: verify nothing (the trivial filter).
    #[cfg(feature = "bench")]
    #[serde(default)]
    passthrough: bool,
    /// Feature `bench` only: the header calls a verifying filter cannot
    /// avoid (read the headers, remove the key, set the principal), no
    /// verify.
    #[cfg(feature = "bench")]
    #[serde(default)]
    header_floor: bool,
    /// Feature `bench` only: the first request with a key times each ABI
    /// call and the verify in a loop and logs the figures.
    #[cfg(feature = "bench")]
    #[serde(default)]
    probe: bool,
}

fn default_poll() -> String {
    "1s".into()
}
// The contract's defaults, from the core (one place for every surface).
fn default_principal_header() -> String {
    Policy::DEFAULT.principal_header().into()
}
fn default_realm() -> String {
    Policy::DEFAULT.realm().into()
}
fn default_retry_after() -> u32 {
    Policy::DEFAULT.retry_after()
}

/// What the poller thread and the filters share.
struct Shared {
    verifier: Verifier,
    source: Source,
    /// The main-thread scheduler (null once the configuration is gone).
    scheduler: Mutex<usize>,
}

/// Envoy stat ids (defined once per configuration).
#[derive(Default)]
struct Metrics {
    verify: usize,
    installed: usize,
    refused: usize,
    deprecated: usize,
    snapshot_version: usize,
    revocation_seq: usize,
    trust_version: usize,
}

/// The counter values last reported (main thread only): Envoy counters
/// only go up, by the difference.
#[derive(Default)]
struct Reported {
    outcomes: [u64; 9],
    installed: [u64; 3],
    refused: [u64; 3],
    deprecated: std::collections::HashMap<String, u64>,
}

/// One `filter_config`: the settings, the shared verifier and its poller.
struct FilterConfig {
    envoy: ConfigEnvoyPtr,
    /// The contract's settings, made once: borrows the strings of
    /// `settings`, whose heap buffers never move or change while this lives.
    policy: Policy<'static>,
    settings: Settings,
    shared: Arc<Shared>,
    /// Polls `shared.source` (stopped when the configuration is destroyed).
    poller: Option<Poller>,
    poll: Duration,
    metrics: Metrics,
    reported: Mutex<Reported>,
}

/// One HTTP stream.
struct Filter {
    config: *const FilterConfig,
    /// A forwarded deprecated key's answer, for the response headers.
    answer: Option<Answer>,
}

fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer lives across the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Runs a hook body; a panic becomes `fallback` (none crosses into Envoy).
fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Loads what changed, by the core's reload rules; logs what happened;
/// whether the origin answered (the poller backs off while it does not).
fn load(s: &Shared) -> bool {
    let loaded = s.source.load(&s.verifier);
    for e in &loaded.events {
        let level = if e.contains("->") { LOG_INFO } else { LOG_WARN };
        log(level, &format!("keygate: {e}"));
    }
    loaded.answered
}

/// One poll: load, then ask the main thread to report the stats.
fn tick(s: &Shared) -> bool {
    let answered = load(s);
    let scheduler = s.scheduler.lock().unwrap_or_else(|e| e.into_inner());
    if *scheduler != 0 {
        // SAFETY: a live scheduler (deleted only under this lock).
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                *scheduler as ConfigSchedulerPtr,
                0,
            )
        }
    }
    answered
}

impl FilterConfig {
    fn new(envoy: ConfigEnvoyPtr, config: &[u8]) -> Result<Self, String> {
        let settings: Settings =
            serde_json::from_slice(config).map_err(|e| format!("filter_config: {e}"))?;
        // SAFETY: the strings' heap buffers outlive `policy` (both are
        // fields of the configuration, never changed) and stay where they
        // are when `settings` moves.
        let (realm, principal_header): (&'static str, &'static str) = unsafe {
            (
                &*(settings.realm.as_str() as *const str),
                &*(settings.principal_header.as_str() as *const str),
            )
        };
        let policy = Policy::new(realm, principal_header, settings.retry_after)
            .map_err(|e| e.to_string())?;
        let poll = humantime::parse_duration(&settings.poll_interval)
            .map_err(|e| format!("poll_interval {:?}: {e}", settings.poll_interval))?;
        if poll < Duration::from_millis(100) || poll > Duration::from_secs(3600) {
            return Err("poll_interval must be between 100ms and 1h".into());
        }
        let anchor = std::fs::read(&settings.trust_path)
            .map_err(|e| format!("trust_path {}: {e}", settings.trust_path.display()))?;
        let verifier = Verifier::new(&anchor).map_err(|e| format!("trust_path refused: {e}"))?;
        let origin = match (&settings.artifacts_dir, &settings.artifacts_url) {
            (Some(d), None) => Origin::dir(d),
            (None, Some(u)) if u.starts_with("http://") || u.starts_with("https://") => {
                Origin::url(u)
            }
            (None, Some(u)) => return Err(format!("artifacts_url must be http(s): {u:?}")),
            _ => return Err("give one of artifacts_dir and artifacts_url".into()),
        };
        let shared = Arc::new(Shared {
            verifier,
            source: Source::new(origin),
            scheduler: Mutex::new(0),
        });
        let mut me = Self {
            envoy,
            policy,
            settings,
            shared,
            poller: None,
            poll,
            metrics: Metrics::default(),
            reported: Mutex::new(Reported::default()),
        };
        me.define_metrics()?;
        // The first load before any request: a snapshot at the source is
        // in use from the first request on (else 503 until the poller
        // finds one).
        load(&me.shared);
        Ok(me)
    }

    fn define_metrics(&mut self) -> Result<(), String> {
        let envoy = self.envoy;
        let define = |gauge: bool, name: &str, label: Option<&str>| -> Result<usize, String> {
            let mut labels: Vec<ModuleBuffer> = label
                .map(|l| ModuleBuffer::of(l.as_bytes()))
                .into_iter()
                .collect();
            let mut id = 0usize;
            // SAFETY: the buffers live across the call; Envoy copies them.
            let r = unsafe {
                let f = if gauge {
                    envoy_dynamic_module_callback_http_filter_config_define_gauge
                } else {
                    envoy_dynamic_module_callback_http_filter_config_define_counter
                };
                f(
                    envoy,
                    ModuleBuffer::of(name.as_bytes()),
                    labels.as_mut_ptr(),
                    labels.len(),
                    &mut id,
                )
            };
            if r != 0 {
                return Err(format!("stat {name}: Envoy refused it ({r})"));
            }
            Ok(id)
        };
        self.metrics = Metrics {
            verify: define(false, "keygate_verify_total", Some("outcome"))?,
            installed: define(false, "keygate_artifact_installed_total", Some("artifact"))?,
            refused: define(false, "keygate_artifact_refused_total", Some("artifact"))?,
            deprecated: define(false, "keygate_deprecated_key_uses_total", Some("key_id"))?,
            snapshot_version: define(true, "keygate_snapshot_version", None)?,
            revocation_seq: define(true, "keygate_revocation_sequence", None)?,
            trust_version: define(true, "keygate_trust_version", None)?,
        };
        Ok(())
    }

    /// Reports the verifier's counters and versions as Envoy stats (main
    /// thread): every worker's verifies, one set of names.
    fn report(&self) {
        let stats = self.shared.verifier.stats();
        let mut last = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let counter = |id: usize, label: &str, by: u64| {
            if by == 0 {
                return;
            }
            let mut v = [ModuleBuffer::of(label.as_bytes())];
            // SAFETY: main thread, a defined id, buffers alive for the call.
            unsafe {
                envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    self.envoy,
                    id,
                    v.as_mut_ptr(),
                    1,
                    by,
                );
            }
        };
        for (i, o) in Outcome::ALL.iter().enumerate() {
            counter(
                self.metrics.verify,
                o.as_str(),
                stats.outcomes[i] - last.outcomes[i].min(stats.outcomes[i]),
            );
        }
        last.outcomes = stats.outcomes;
        for (i, kind) in ["snapshot", "revocations", "trust"].iter().enumerate() {
            counter(
                self.metrics.installed,
                kind,
                stats.installed[i].saturating_sub(last.installed[i]),
            );
            counter(
                self.metrics.refused,
                kind,
                stats.refused[i].saturating_sub(last.refused[i]),
            );
        }
        last.installed = stats.installed;
        last.refused = stats.refused;
        for d in &stats.deprecated {
            let id = d.key_id.to_string();
            let before = last.deprecated.get(&id).copied().unwrap_or(0);
            counter(self.metrics.deprecated, &id, d.count.saturating_sub(before));
            last.deprecated.insert(id, d.count);
        }
        for (id, v) in [
            (self.metrics.snapshot_version, stats.snapshot_version),
            (self.metrics.revocation_seq, stats.revocation_seq),
            (self.metrics.trust_version, stats.trust_version),
        ] {
            // SAFETY: as above; no labels.
            unsafe {
                envoy_dynamic_module_callback_http_filter_config_set_gauge(
                    self.envoy,
                    id,
                    std::ptr::null_mut(),
                    0,
                    v,
                );
            }
        }
    }
}

impl Filter {
    fn config<'c>(&self) -> &'c FilterConfig {
        // SAFETY: Envoy destroys a configuration only after every filter
        // made from it (each filter holds its configuration).
        unsafe { &*self.config }
    }

    fn request_headers(&mut self, envoy: FilterEnvoyPtr) -> Status {
        let config = self.config();
        #[cfg(feature = "bench")]
        if config.settings.passthrough {
            return CONTINUE;
        }
        let policy = config.policy;
        // The request's headers as Envoy holds them (pointers into its map):
        // on the stack for up to 32 headers, else on the heap. No
        // thread-local: in a module Envoy loads with dlopen, each access to
        // one is a call.
        const EMPTY: EnvoyHttpHeader = EnvoyHttpHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        let mut stack = [EMPTY; 32];
        let mut heap: Vec<EnvoyHttpHeader> = Vec::new();
        // SAFETY: `envoy` is this stream's filter; the array has room for
        // the count Envoy gave, and the pointers it fills stay valid until
        // a header is changed (after the last read below).
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(envoy, REQUEST_HEADER) };
        let buf: &mut [EnvoyHttpHeader] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, EMPTY);
            &mut heap
        };
        let got = unsafe {
            envoy_dynamic_module_callback_http_get_headers(envoy, REQUEST_HEADER, buf.as_mut_ptr())
        };
        if !got {
            // The host's headers could not be read: refuse, never guess.
            return reply(envoy, &Answer::conflict(), &policy);
        }
        let headers: &[EnvoyHttpHeader] = buf;
        let pairs = headers.iter().map(|h| unsafe {
            (
                bytes(h.key_ptr, h.key_length),
                bytes(h.value_ptr, h.value_length),
            )
        });
        #[cfg(feature = "bench")]
        if config.settings.header_floor {
            return header_floor(envoy, pairs, &policy);
        }
        #[cfg(feature = "bench")]
        if config.settings.probe && !PROBED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            probe(envoy, config, headers);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (answer, verdict) =
            config
                .shared
                .verifier
                .check(pairs.clone(), now, config.settings.scope.as_deref());
        if !answer.forward() {
            return reply(envoy, &answer, &policy);
        }
        // Copies of the names to remove (changing a header may move the
        // others Envoy pointed at), on the stack.
        let mut strip = Names::default();
        for (name, value) in pairs {
            if policy.strips(name, value) {
                strip.add(name);
            }
        }
        for name in strip.iter() {
            // SAFETY: a null value removes the header.
            unsafe {
                envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    REQUEST_HEADER,
                    ModuleBuffer::of(name),
                    ModuleBuffer::NULL,
                );
            }
        }
        if let Some(d) = verdict {
            let p = keygate::principal_value(d.principal.as_str());
            // Added, not set: every client copy of the principal header was
            // removed above (`strips` names them), and an add does not scan
            // the map for values to replace.
            unsafe {
                envoy_dynamic_module_callback_http_add_header(
                    envoy,
                    REQUEST_HEADER,
                    ModuleBuffer::of(policy.principal_header().as_bytes()),
                    ModuleBuffer::of(p.as_bytes()),
                );
            }
        }
        if answer.deprecation.is_some() {
            self.answer = Some(answer);
        }
        CONTINUE
    }

    fn response_headers(&mut self, envoy: FilterEnvoyPtr) -> Status {
        if let Some(a) = self.answer {
            let policy = self.config().policy;
            for (name, value) in a.response_headers(&policy) {
                // SAFETY: this stream's filter, buffers alive for the call.
                unsafe {
                    envoy_dynamic_module_callback_http_add_header(
                        envoy,
                        RESPONSE_HEADER,
                        ModuleBuffer::of(name.as_bytes()),
                        ModuleBuffer::of(value.as_bytes()),
                    );
                }
            }
        }
        CONTINUE
    }
}

/// The benchmark's floor: what a verifying filter does to the headers, with
/// a constant for the principal and no verify.
#[cfg(feature = "bench")]
fn header_floor<'a>(
    envoy: FilterEnvoyPtr,
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    policy: &Policy<'_>,
) -> Status {
    let strip: Vec<Vec<u8>> = pairs
        .filter(|(n, v)| policy.strips(n, v))
        .map(|(n, _)| n.to_vec())
        .collect();
    for name in &strip {
        // SAFETY: this stream's filter; a null value removes the header.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                envoy,
                REQUEST_HEADER,
                ModuleBuffer::of(name),
                ModuleBuffer::NULL,
            );
        }
    }
    unsafe {
        envoy_dynamic_module_callback_http_set_header(
            envoy,
            REQUEST_HEADER,
            ModuleBuffer::of(policy.principal_header().as_bytes()),
            ModuleBuffer::of(b"header-floor"),
        );
    }
    CONTINUE
}

/// Header names to remove, copied (each once) into a stack buffer; more
/// than it holds go to the heap.
struct Names {
    buf: [u8; 256],
    used: usize,
    spans: [(usize, usize); 4],
    n: usize,
    more: Vec<Vec<u8>>,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            buf: [0; 256],
            used: 0,
            spans: [(0, 0); 4],
            n: 0,
            more: Vec::new(),
        }
    }
}

impl Names {
    fn add(&mut self, name: &[u8]) {
        if self.iter().any(|have| have == name) {
            return;
        }
        if self.n < self.spans.len() && self.used + name.len() <= self.buf.len() {
            self.buf[self.used..self.used + name.len()].copy_from_slice(name);
            self.spans[self.n] = (self.used, name.len());
            self.used += name.len();
            self.n += 1;
        } else {
            self.more.push(name.to_vec());
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans[..self.n]
            .iter()
            .map(|&(at, len)| &self.buf[at..at + len])
            .chain(self.more.iter().map(Vec::as_slice))
    }
}

#[cfg(feature = "bench")]
static PROBED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logs what each call of the request path costs inside Envoy, each timed
/// over 2000 calls within one request (the cost a native filter cannot
/// avoid, next to the verify).
#[cfg(feature = "bench")]
fn probe(envoy: FilterEnvoyPtr, config: &FilterConfig, headers: &[EnvoyHttpHeader]) {
    use std::hint::black_box;
    use std::time::Instant;
    const N: u32 = 2000;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..N {
            f();
        }
        t.elapsed().as_nanos() as f64 / f64::from(N)
    };
    let pairs = || {
        headers.iter().map(|h| unsafe {
            (
                bytes(h.key_ptr, h.key_length),
                bytes(h.value_ptr, h.value_length),
            )
        })
    };
    let mut buf: Vec<EnvoyHttpHeader> = Vec::with_capacity(64);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let principal = config.policy.principal_header().as_bytes();
    let figures = [
        (
            "get_headers_size + get_headers",
            time(&mut || unsafe {
                let n = envoy_dynamic_module_callback_http_get_headers_size(envoy, REQUEST_HEADER);
                buf.reserve(n);
                black_box(envoy_dynamic_module_callback_http_get_headers(
                    envoy,
                    REQUEST_HEADER,
                    buf.as_mut_ptr(),
                ));
            }),
        ),
        (
            "set_header (principal)",
            time(&mut || unsafe {
                black_box(envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    REQUEST_HEADER,
                    ModuleBuffer::of(principal),
                    ModuleBuffer::of(b"probe"),
                ));
            }),
        ),
        (
            "set_header (remove an absent header)",
            time(&mut || unsafe {
                black_box(envoy_dynamic_module_callback_http_set_header(
                    envoy,
                    REQUEST_HEADER,
                    ModuleBuffer::of(b"x-keygate-absent"),
                    ModuleBuffer::NULL,
                ));
            }),
        ),
        (
            "SystemTime::now",
            time(&mut || {
                black_box(SystemTime::now());
            }),
        ),
        (
            "check (presented key + verify + answer)",
            time(&mut || {
                black_box(config.shared.verifier.check(
                    pairs(),
                    now,
                    config.settings.scope.as_deref(),
                ));
            }),
        ),
        (
            "Policy::strips over the headers",
            time(&mut || {
                black_box(pairs().filter(|(n, v)| config.policy.strips(n, v)).count());
            }),
        ),
        (
            // Last: it leaves 2000 headers behind.
            "add_header (principal)",
            time(&mut || unsafe {
                black_box(envoy_dynamic_module_callback_http_add_header(
                    envoy,
                    REQUEST_HEADER,
                    ModuleBuffer::of(b"x-keygate-probe"),
                    ModuleBuffer::of(b"probe"),
                ));
            }),
        ),
    ];
    let text: Vec<String> = figures
        .iter()
        .map(|(what, ns)| format!("{what} {ns:.0} ns"))
        .collect();
    log(
        LOG_WARN,
        &format!(
            "keygate probe ({} request headers): {}",
            headers.len(),
            text.join("; ")
        ),
    );
}

/// # Safety
/// `ptr` points at `len` bytes Envoy keeps alive for the current hook.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(ptr, len)
}

/// Answers the request from Envoy (401, 400, 403, 503) and stops it.
fn reply(envoy: FilterEnvoyPtr, a: &Answer, policy: &Policy<'_>) -> Status {
    let texts: Vec<(&str, keygate::HeaderText)> = a.response_headers(policy).collect();
    let mut headers: Vec<ModuleHttpHeader> = texts
        .iter()
        .map(|(n, v)| ModuleHttpHeader {
            key_ptr: n.as_ptr(),
            key_length: n.len(),
            value_ptr: v.as_bytes().as_ptr(),
            value_length: v.as_bytes().len(),
        })
        .collect();
    let body = a.body().as_bytes();
    // SAFETY: this stream's filter; every buffer lives across the call.
    unsafe {
        envoy_dynamic_module_callback_http_send_response(
            envoy,
            u32::from(a.status),
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            ModuleBuffer::of(b"keygate"),
        );
    }
    STOP_ITERATION
}

// ------------------------------------------------------------ event hooks

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const std::ffi::c_char {
    ABI_VERSION.as_ptr()
}

/// # Safety
/// Envoy passes buffers valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ConfigModulePtr {
    guarded(std::ptr::null(), || {
        let name = bytes(name.ptr, name.length);
        if name != FILTER_NAME {
            log(
                LOG_ERROR,
                &format!(
                    "keygate: unknown filter_name {:?} (use \"keygate\")",
                    String::from_utf8_lossy(name)
                ),
            );
            return std::ptr::null();
        }
        match FilterConfig::new(envoy, bytes(config.ptr, config.length)) {
            Ok(c) => {
                let mut c = Box::new(c);
                let scheduler =
                    envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy);
                *c.shared.scheduler.lock().unwrap_or_else(|e| e.into_inner()) = scheduler as usize;
                c.report();
                let shared = Arc::clone(&c.shared);
                // While the origin fails, up to 30 s (or the poll interval
                // if longer) between looks.
                let backoff = c.poll.max(Duration::from_secs(30));
                match Poller::start("keygate-poll", c.poll, backoff, move || tick(&shared)) {
                    Ok(p) => c.poller = Some(p),
                    Err(e) => {
                        log(LOG_ERROR, &format!("keygate: no poller thread: {e}"));
                        return std::ptr::null();
                    }
                }
                Box::into_raw(c) as ConfigModulePtr
            }
            Err(e) => {
                log(LOG_ERROR, &format!("keygate: {e}"));
                std::ptr::null()
            }
        }
    })
}

/// # Safety
/// `config` is a pointer `..._config_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    config: ConfigModulePtr,
) {
    guarded((), || {
        let c = Box::from_raw(config as *mut FilterConfig);
        let mut scheduler = c.shared.scheduler.lock().unwrap_or_else(|e| e.into_inner());
        if *scheduler != 0 {
            envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                *scheduler as ConfigSchedulerPtr,
            );
            *scheduler = 0;
        }
        drop(scheduler);
        // Dropping the configuration stops its poller (which then lets go
        // of the verifier).
        drop(c);
    })
}

/// # Safety
/// Pointers as Envoy passes them.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _envoy: ConfigEnvoyPtr,
    config: ConfigModulePtr,
    _event: u64,
) {
    guarded((), || (*(config as *const FilterConfig)).report())
}

/// # Safety
/// `config` is a pointer `..._config_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ConfigModulePtr,
    _envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    guarded(std::ptr::null(), || {
        Box::into_raw(Box::new(Filter {
            config: config as *const FilterConfig,
            answer: None,
        })) as FilterModulePtr
    })
}

/// # Safety
/// `filter` is a pointer `..._filter_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    _end_of_stream: bool,
) -> Status {
    guarded(STOP_ITERATION, || {
        (*(filter as *mut Filter)).request_headers(envoy)
    })
}

/// # Safety
/// `filter` is a pointer `..._filter_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    _end_of_stream: bool,
) -> Status {
    guarded(CONTINUE, || {
        (*(filter as *mut Filter)).response_headers(envoy)
    })
}

/// # Safety
/// `filter` is a pointer `..._filter_new` returned; not used after.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: FilterModulePtr) {
    guarded((), || drop(Box::from_raw(filter as *mut Filter)))
}

// The hooks this filter has nothing to do in: Envoy 1.40 looks each up.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _: FilterEnvoyPtr,
    _: FilterModulePtr,
    _: bool,
) -> Status {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _: FilterEnvoyPtr,
    _: FilterModulePtr,
) -> Status {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _: FilterEnvoyPtr,
    _: FilterModulePtr,
    _: bool,
) -> Status {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _: FilterEnvoyPtr,
    _: FilterModulePtr,
) -> Status {
    CONTINUE
}

/// `..._local_reply`: 0 is `Continue` (send the local reply).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _: FilterEnvoyPtr,
    _: FilterModulePtr,
    _: u32,
    _: EnvoyBuffer,
    _: bool,
) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _: EnvoyBuffer,
    _: EnvoyBuffer,
) -> *const c_void {
    // Per-route configuration is not supported: Envoy rejects one.
    std::ptr::null()
}

// Hooks with nothing to do here (stream completion, scheduling, watermarks,
// per-route configuration, and callouts and streams, which this filter never
// starts): they exist because Envoy 1.40 resolves them when it loads the
// module.
macro_rules! no_op_hooks {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name($(_: $arg),*) {}
        )*
    };
}

no_op_hooks! {
    envoy_dynamic_module_on_http_filter_stream_complete(FilterEnvoyPtr, FilterModulePtr);
    envoy_dynamic_module_on_http_filter_scheduled(FilterEnvoyPtr, FilterModulePtr, u64);
    envoy_dynamic_module_on_http_filter_per_route_config_destroy(*const c_void);
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(FilterEnvoyPtr, FilterModulePtr);
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(FilterEnvoyPtr, FilterModulePtr);
    envoy_dynamic_module_on_http_filter_http_callout_done(FilterEnvoyPtr, FilterModulePtr, u64, u32, *mut EnvoyHttpHeader, usize, *mut EnvoyBuffer, usize);
    envoy_dynamic_module_on_http_filter_http_stream_headers(FilterEnvoyPtr, FilterModulePtr, u64, *mut EnvoyHttpHeader, usize, bool);
    envoy_dynamic_module_on_http_filter_http_stream_data(FilterEnvoyPtr, FilterModulePtr, u64, *const EnvoyBuffer, usize, bool);
    envoy_dynamic_module_on_http_filter_http_stream_trailers(FilterEnvoyPtr, FilterModulePtr, u64, *mut EnvoyHttpHeader, usize);
    envoy_dynamic_module_on_http_filter_http_stream_complete(FilterEnvoyPtr, FilterModulePtr, u64);
    envoy_dynamic_module_on_http_filter_http_stream_reset(FilterEnvoyPtr, FilterModulePtr, u64, u32);
    envoy_dynamic_module_on_http_filter_config_http_callout_done(ConfigEnvoyPtr, ConfigModulePtr, u64, u32, *mut EnvoyHttpHeader, usize, *mut EnvoyBuffer, usize);
    envoy_dynamic_module_on_http_filter_config_http_stream_headers(ConfigEnvoyPtr, ConfigModulePtr, u64, *mut EnvoyHttpHeader, usize, bool);
    envoy_dynamic_module_on_http_filter_config_http_stream_data(ConfigEnvoyPtr, ConfigModulePtr, u64, *const EnvoyBuffer, usize, bool);
    envoy_dynamic_module_on_http_filter_config_http_stream_trailers(ConfigEnvoyPtr, ConfigModulePtr, u64, *mut EnvoyHttpHeader, usize);
    envoy_dynamic_module_on_http_filter_config_http_stream_complete(ConfigEnvoyPtr, ConfigModulePtr, u64);
    envoy_dynamic_module_on_http_filter_config_http_stream_reset(ConfigEnvoyPtr, ConfigModulePtr, u64, u32);
}
