//! The verifier against a tiny reference model (a HashMap) over random
//! sequences of snapshot installs, revocation updates, verifies and time steps.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use keygate::{KeyId, Outcome, RecordSpec, Status, Verifier};
use proptest::prelude::*;

const POOL: u32 = 10;
const SCOPES: [&str; 3] = ["a:read", "a:write", "b:read"];

#[derive(Debug, Clone)]
enum Op {
    Snapshot {
        version_step: i8,
        keys: Vec<(u32, u8, u8, i32, i32, u8)>,
    },
    Revoke {
        seq_step: i8,
        base_step: i8,
        keys: Vec<u32>,
    },
    Verify {
        key: u32,
        scope: Option<usize>,
    },
    Tick(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (-1i8..3, prop::collection::vec((0..POOL, 0u8..3, 0u8..8, -200i32..200, -200i32..200, 0u8..4), 0..8))
            .prop_map(|(version_step, keys)| Op::Snapshot { version_step, keys }),
        2 => (-1i8..3, -1i8..2, prop::collection::vec(0..POOL, 0..4))
            .prop_map(|(seq_step, base_step, keys)| Op::Revoke { seq_step, base_step, keys }),
        8 => (0..POOL + 2, prop::option::of(0..3usize)).prop_map(|(key, scope)| Op::Verify { key, scope }),
        1 => (0u32..400).prop_map(Op::Tick),
    ]
}

#[derive(Clone)]
struct ModelKey {
    status: Status,
    scopes: u8,
    not_before: u64,
    expires_at: Option<u64>,
}

#[derive(Default)]
struct Model {
    version: u64,
    keys: HashMap<u32, ModelKey>,
    valid_until: u64,
    seq: u64,
    revoked: HashSet<u32>,
    has_update: bool,
    /// The applied update's valid-until: an update bounds freshness too.
    update_valid_until: Option<u64>,
}

impl Model {
    fn decide(&self, k: u32, now: u64, scope: Option<usize>) -> Outcome {
        if self.version == 0 {
            return Outcome::Stale;
        }
        if k == POOL + 1 {
            return Outcome::Malformed;
        }
        let Some(m) = self.keys.get(&k) else {
            return Outcome::Unknown;
        };
        if m.status == Status::Revoked || self.revoked.contains(&k) {
            Outcome::Revoked
        } else if now < m.not_before {
            Outcome::NotYetValid
        } else if m.expires_at.is_some_and(|e| now >= e) {
            Outcome::Expired
        } else if scope.is_some_and(|s| m.scopes >> s & 1 == 0) {
            Outcome::InsufficientScope
        } else if now
            > self
                .valid_until
                .min(self.update_valid_until.unwrap_or(u64::MAX))
                + 86_400
        {
            Outcome::Stale
        } else if m.status == Status::Deprecated {
            Outcome::ValidDeprecated
        } else {
            Outcome::Valid
        }
    }
}

fn presented(k: u32) -> String {
    if k == POOL + 1 {
        let s = key(0).expose_secret().to_string();
        format!("{}X", &s[..s.len() - 1]) // checksum broken
    } else {
        key(k).expose_secret().to_string()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn verifier_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let s = signer(1);
        let v = Verifier::new(&trust(&s)).unwrap();
        let mut m = Model::default();
        let mut now = T0;
        for op in ops {
            match op {
                Op::Snapshot { version_step, keys } => {
                    let version = (m.version as i64 + i64::from(version_step)).max(1) as u64;
                    let mut recs: HashMap<u32, (RecordSpec, ModelKey)> = HashMap::new();
                    for (k, st, scopes, nb, exp, _) in keys {
                        let status = [Status::Active, Status::Deprecated, Status::Revoked][st as usize];
                        let names: Vec<&str> = (0..3).filter(|i| scopes >> i & 1 == 1).map(|i| SCOPES[i]).collect();
                        let mut r = RecordSpec::active(key(k).digest(), &format!("p{k}"), &names);
                        r.status = status;
                        r.not_before = (now as i64 + i64::from(nb)).max(0) as u64;
                        r.expires_at = (exp > 0).then(|| now + exp as u64);
                        let mk = ModelKey { status, scopes, not_before: r.not_before, expires_at: r.expires_at };
                        recs.insert(k, (r, mk));
                    }
                    let mut b = keygate::SnapshotBuilder::new(keyset(), keygate::Prefix::new(PREFIX).unwrap(), version, now)
                        .valid_until(now + 100);
                    for (r, _) in recs.values() { b.push(r.clone()); }
                    let res = v.install_snapshot(&b.build(&s).unwrap());
                    if version > m.version {
                        prop_assert!(res.is_ok());
                        m.version = version;
                        m.valid_until = now + 100;
                        m.keys = recs.into_iter().map(|(k, (_, mk))| (k, mk)).collect();
                        m.seq = 0;
                        m.revoked.clear();
                        m.has_update = false;
                        m.update_valid_until = None;
                    } else if version == m.version {
                        prop_assert_eq!(res, Ok(keygate::Installed::Unchanged));
                    } else {
                        prop_assert!(res.is_err());
                    }
                }
                Op::Revoke { seq_step, base_step, keys } => {
                    let seq = (m.seq as i64 + i64::from(seq_step)).max(1) as u64;
                    let base = (m.version as i64 + i64::from(base_step)).max(1) as u64;
                    let universe: Vec<KeyId> = m.keys.keys().map(|k| key(*k).key_id()).collect();
                    let rev: HashSet<u32> = keys.into_iter().filter(|k| m.keys.contains_key(k)).collect();
                    let rev_ids: Vec<KeyId> = rev.iter().map(|k| key(*k).key_id()).collect();
                    let res = v.install_revocations(&update(&s, base, seq, &universe, &rev_ids));
                    let accepted = m.version != 0 && base == m.version && (seq > m.seq || !m.has_update);
                    if accepted {
                        prop_assert!(res.is_ok(), "{:?}", res);
                        m.seq = seq;
                        m.revoked = rev;
                        m.has_update = true;
                        m.update_valid_until = Some(T0 + 3600); // common::update's
                    } else if m.version != 0 && base == m.version && seq == m.seq {
                        prop_assert_eq!(res, Ok(keygate::Installed::Unchanged));
                    } else {
                        prop_assert!(res.is_err());
                    }
                }
                Op::Verify { key: k, scope } => {
                    let d = v.verify(&presented(k), now, scope.map(|i| SCOPES[i]));
                    prop_assert_eq!(d.outcome, m.decide(k, now, scope), "key {} at {}", k, now - T0);
                    prop_assert_eq!(d.snapshot_version, m.version);
                    prop_assert_eq!(d.revocation_seq, m.seq);
                }
                Op::Tick(dt) => now += u64::from(dt) * 300,
            }
        }
    }
}
