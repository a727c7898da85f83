//! Micro-benchmarks (divan) of the in-process work on the runtime's hot path: everything a
//! reserve does besides HTTP and the one EVALSHA.
//!
//! `cargo bench --bench hot_paths` (add `-- --sample-count 10` for a quick pass). Under
//! `cargo test --all-targets` divan runs each benchmark once, as a smoke test.
//!
//! The key cache itself (`auth::cache::KeyCache`) needs a live `PgStore` to exist and fills
//! only from Postgres, so its hit path is reproduced here: the HMAC digest, the DashMap
//! lookup by digest, the freshness check, the `Arc` clone and the status check.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use divan::{Bencher, black_box};
use serde_json::Value;
use time::OffsetDateTime;

use tollgate::internals::{
    Class, Gate, KeyDigest, KeyHasher, KeyInfo, KeyStatus, Permission, RateLimit, RateLimits, ReserveRequest, Scopes,
    Subject, TenantId, TenantStatus, Tier, request_hash,
};

fn main() {
    divan::main();
}

const KEY: &str = "cyc_live_p67wWB9YPmJQErUKkdAvPCq7wDOhlIE3";
const SERVER_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// A typical reserve body (3-scope subject, as the load harness sends).
const RESERVE_BODY: &str = r#"{"idempotency_key":"c12-40123","subject":{"tenant":"acme","workspace":"ws","agent":"planner"},"action":{"kind":"llm.completion","name":"gpt-4o","tags":["prod"]},"estimate":{"unit":"USD_MICROCENTS","amount":50000000},"ttl_ms":60000,"metadata":{"run":"r-1","step":3}}"#;

/// A reserve script reply as `ledger::decode` receives it.
const RESERVE_REPLY: &str = r#"{"decision":"ALLOW","reservation_id":"rsv_acme_0123456789abcdef0123456789abcdef","expires_at_ms":"1767225660000","now":"1767225600000","balances":[{"scope":"tenant:acme","a":"1000000000000","s":"4200000","r":"50000000","d":"0","o":"0","x":"0"},{"scope":"tenant:acme/workspace:ws","a":"1000000000000","s":"4200000","r":"50000000","d":"0","o":"0","x":"0"},{"scope":"tenant:acme/workspace:ws/agent:planner","a":"1000000000000","s":"4200000","r":"50000000","d":"0","o":"0","x":"0"}]}"#;

fn key_info() -> Arc<KeyInfo> {
    Arc::new(KeyInfo {
        key_id: "key_0123456789".into(),
        tenant_id: TenantId::parse("acme").expect("tenant id"),
        permissions: tollgate::internals::DEFAULT_PERMISSIONS.to_vec(),
        scope_filter: Vec::new(),
        stored_status: KeyStatus::Active,
        expires_at: OffsetDateTime::now_utc() + time::Duration::days(365),
        tenant_status: TenantStatus::Active,
        tenant_tier: Tier::built_in("enterprise"),
        tenant_rate_limit: None,
        tier_class: Class::Premium,
        tier_rate_limit: Some(RateLimit { per_second: 1_000_000_000, burst: 2_000_000_000 }),
    })
}

mod auth {
    use super::*;

    /// HMAC-SHA256 of a presented key under the server secret (every runtime request).
    #[divan::bench]
    fn key_digest(bencher: Bencher) {
        let hasher = KeyHasher::new(SERVER_SECRET);
        bencher.bench(|| hasher.digest(black_box(KEY)));
    }

    /// The key-cache hit path: digest → DashMap lookup (10 000 entries) → freshness →
    /// Arc clone → key status and tenant status checks.
    #[divan::bench]
    fn cache_hit(bencher: Bencher) {
        struct Entry {
            info: Option<Arc<KeyInfo>>,
            fetched: Instant,
        }
        let hasher = KeyHasher::new(SERVER_SECRET);
        let entries: DashMap<KeyDigest, Entry> = DashMap::new();
        for i in 0..10_000 {
            entries
                .insert(hasher.digest(format!("{KEY}{i}")), Entry { info: Some(key_info()), fetched: Instant::now() });
        }
        entries.insert(hasher.digest(KEY), Entry { info: Some(key_info()), fetched: Instant::now() });
        let ttl = tollgate::internals::POSITIVE_TTL;
        bencher.bench(|| {
            let digest = hasher.digest(black_box(KEY));
            let entry = entries.get(&digest).expect("cached");
            assert!(entry.fetched.elapsed() < ttl);
            let info = entry.info.clone().expect("known key");
            drop(entry);
            let ok = info.status_at(OffsetDateTime::now_utc()) == KeyStatus::Active
                && info.tenant_status != TenantStatus::Closed
                && tollgate::internals::grants(&info.permissions, Permission::ReservationsCreate);
            black_box((info, ok))
        });
    }
}

mod scopes {
    use super::*;

    /// Scope derivation of a 3-level subject (tenant/workspace/agent).
    #[divan::bench]
    fn derive_3(bencher: Bencher) {
        let levels = [Some("acme"), Some("ws"), None, None, Some("planner"), None];
        bencher.bench(|| Scopes::derive(black_box(&levels)));
    }

    /// Scope derivation of a full 6-level subject.
    #[divan::bench]
    fn derive_6(bencher: Bencher) {
        let levels = [Some("Acme"), Some("ws"), Some("app"), Some("wf"), Some("planner"), Some("tools")];
        bencher.bench(|| Scopes::derive(black_box(&levels)));
    }

    /// What the reserve handler calls: subject validation + tenant check + derivation.
    #[divan::bench]
    fn subject_scopes_for(bencher: Bencher) {
        let subject: Subject =
            serde_json::from_str(r#"{"tenant":"acme","workspace":"ws","agent":"planner"}"#).expect("subject");
        bencher.bench(|| black_box(&subject).scopes_for("acme").expect("valid"));
    }
}

mod json {
    use super::*;

    /// Parse a reserve body into a `serde_json::Value`.
    #[divan::bench]
    fn parse_value(bencher: Bencher) {
        bencher.bench(|| serde_json::from_str::<Value>(black_box(RESERVE_BODY)).expect("json"));
    }

    /// Parse a reserve body into the handler's typed request, as the `JsonBody` extractor
    /// does (serde_path_to_error over serde_json).
    #[divan::bench]
    fn parse_reserve_request(bencher: Bencher) {
        bencher.bench(|| {
            let de = &mut serde_json::Deserializer::from_slice(black_box(RESERVE_BODY.as_bytes()));
            serde_path_to_error::deserialize::<_, ReserveRequest>(de).expect("request")
        });
    }

    /// Canonical JSON of a parsed body + SHA-256 (the idempotency fingerprint's core).
    #[divan::bench]
    fn canonical_sha256(bencher: Bencher) {
        use sha2::Digest;
        let value: Value = serde_json::from_str(RESERVE_BODY).expect("json");
        bencher.bench(|| {
            hex::encode(sha2::Sha256::digest(tollgate::internals::canonical_json(black_box(&value)).as_bytes()))
        });
    }

    /// The handler's fingerprint: typed request → Value → canonical JSON → SHA-256 hex.
    #[divan::bench]
    fn request_fingerprint(bencher: Bencher) {
        let req: ReserveRequest = serde_json::from_str(RESERVE_BODY).expect("request");
        bencher.bench(|| request_hash(black_box(&req)).expect("hash"));
    }

    /// Decoding a reserve script reply (3 balances) into the ledger's `Reply`.
    #[divan::bench]
    fn decode_reserve_reply(bencher: Bencher) {
        bencher.bench(|| {
            let reply = tollgate::internals::decode(black_box(RESERVE_REPLY)).expect("reply");
            reply.balances(tollgate::internals::Unit::UsdMicrocents).expect("balances")
        });
    }
}

mod admission {
    use super::*;

    /// The priority gate: admit one premium request and drop its permit.
    #[divan::bench]
    fn gate_admit_drop(bencher: Bencher) {
        let gate = Gate::new(1024, [100, 80, 50]);
        bencher.bench(|| drop(black_box(gate.try_admit(Class::Premium).expect("admitted"))));
    }

    /// The gate under contention from all cores.
    #[divan::bench(threads)]
    fn gate_admit_drop_contended(bencher: Bencher) {
        let gate = Gate::new(1024, [100, 80, 50]);
        bencher.bench(|| drop(black_box(gate.try_admit(Class::Premium).expect("admitted"))));
    }

    /// Per-key and per-tenant rate limit check (GCRA, both allowed).
    #[divan::bench]
    fn rate_limit_check(bencher: Bencher) {
        let limits = RateLimits::new(true);
        let limit = Some(RateLimit { per_second: 1_000_000_000, burst: 2_000_000_000 });
        bencher.bench(|| limits.check(black_box("acme"), black_box("key_0123456789"), black_box(limit)).is_ok());
    }
}
