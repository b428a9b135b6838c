//! Issue 18, the long-lived publisher's side, same run: at N keys, what
//! publishing one added key, one rotation and 1 000 added keys as the update
//! costs (bytes on the wire beyond the update before it, and time), next to
//! a full snapshot publish — on one `Issuer`, as `keygate api`'s publisher
//! keeps it (the published copy and the checked audit chain cached after its
//! first publish), unlike a one-shot `keygate publish` that reads and checks
//! the whole store first (`cli/bench/update_bench.sh`).
//!
//!   cargo bench -p keygate-issuer --bench publish_update            # 1 000 000 keys
//!   KEYGATE_BENCH_SIZES=10000000 cargo bench -p keygate-issuer --bench publish_update
//!
//! Each step runs `ROUNDS` times (a fresh change each round) and reports
//! the median and the worst.
use keygate_issuer::{IssueRequest, Issuer, Principal, PublishReport, StoreAt};
use std::time::{Duration, Instant};

const ROUNDS: usize = 7;
const VALID_FOR: u64 = 86_400;

fn main() {
    // `cargo test --benches` runs this with no work to do.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let sizes: Vec<u64> = std::env::var("KEYGATE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000]);
    for n in sizes {
        run(n);
    }
}

fn request(principal: &str) -> IssueRequest {
    IssueRequest::new(Principal::new(principal).expect("principal"))
}

fn run(n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StoreAt::Dir(dir.path().join("store"));
    let out = dir.path().join("pub");
    let mut i = Issuer::init_at(&store, "bench", "bench_live", "bench").expect("init");
    let t = Instant::now();
    i.issue_many(&request("bulk"), n, |_| {})
        .expect("bulk issue");
    println!("{n} keys: bulk issue {:.1} s", t.elapsed().as_secs_f64());
    for r in 0..ROUNDS {
        i.issue(&request(&format!("rotating-{r}"))).expect("issue");
    }

    let t = Instant::now();
    let full = i.publish(&out, VALID_FOR).expect("full publish");
    let full_time = t.elapsed();
    println!(
        "full snapshot publish: {} bytes (update {} bytes) in {} ms",
        full.snapshot_bytes,
        full.revocations_bytes,
        full_time.as_millis()
    );
    let mut carried = full.revocations_bytes;

    let mut step = |what: &str, change: &mut dyn FnMut(&mut Issuer, usize)| {
        let mut times = Vec::new();
        let mut added = Vec::new();
        let mut last: Option<PublishReport> = None;
        for r in 0..ROUNDS {
            change(&mut i, r);
            let t = Instant::now();
            let rep = i
                .publish_update(&out, VALID_FOR)
                .expect("publish the update");
            times.push(t.elapsed());
            assert_eq!(rep.snapshot_bytes, 0, "{what}: a full snapshot was written");
            added.push(rep.revocations_bytes as i64 - carried as i64);
            carried = rep.revocations_bytes;
            last = Some(rep);
        }
        times.sort();
        added.sort();
        let last = last.expect("rounds");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what}: +{} bytes on the wire (median of {ROUNDS}; max +{}), publish p50 {:.1} ms, max {:.1} ms \
             ({:.2e}x the full publish); update now {} bytes, {} records",
            added[ROUNDS / 2],
            added[ROUNDS - 1],
            ms(times[ROUNDS / 2]),
            ms(times[ROUNDS - 1]),
            ms(times[ROUNDS / 2]) / ms(full_time),
            last.revocations_bytes,
            last.records_in_update,
        );
    };
    step("one added key", &mut |i, r| {
        i.issue(&request(&format!("added-{r}"))).expect("issue");
    });
    step("one rotation", &mut |i, r| {
        i.rotate(&format!("rotating-{r}"), None).expect("rotate");
    });
    step("1 000 added keys", &mut |i, r| {
        i.issue_many(&request(&format!("many-{r}")), 1000, |_| {})
            .expect("issue 1000");
    });
}
