//! Tollgate: a budget reservation and admission engine speaking the Cycles protocol.
//!
//! Data flows one way: HTTP (`runtime_api`, `admin_api`, shared `http`) → `auth` →
//! `admission` (rate limits, priority gate) → `catalogue` (admin rules) / `ledger` → `store`
//! (`pg`, `redis`). `domain` holds the pure types every layer shares, including the one error
//! table; `error` renders it as HTTP at the API edge; `app` wires it all together; `workers`
//! are the background loops. See README §Architecture for the full map and invariants.
//!
//! Every module is private. The public face is what the binary needs (the application, its
//! configuration, logging, the offline commands) and, under [`internals`], the pieces the load
//! harness, the micro-benchmarks and a few tests drive below the HTTP surface.

mod admin_api;
mod admission;
mod app;
mod auth;
mod canonical;
mod catalogue;
mod commands;
mod config;
mod domain;
mod error;
mod events;
mod http;
mod ledger;
mod runtime_api;
mod state;
mod store;
mod telemetry;
mod workers;

pub use app::{Application, cancel_on_signal};
pub use commands::{migrate, verify_audit, verify_audit_file};
pub use config::{AuditCommand, Cli, Command, LogFormat, Plane, ServeConfig, StoreConfig};
pub use telemetry::init_logging;

/// Engine internals for the load harness, the micro-benchmarks and white-box tests. Not a
/// stable interface: it changes with the engine.
#[doc(hidden)]
pub mod internals {
    pub use crate::admission::{Class, Gate, RateLimits};
    pub use crate::auth::cache::{KeyInfo, POSITIVE_TTL};
    pub use crate::auth::secret::{KeyDigest, KeyHasher};
    pub use crate::canonical::to_string as canonical_json;
    pub use crate::commands::append_audit_history;
    pub use crate::domain::amount::{Unit, Units};
    pub use crate::domain::api_key::KeyStatus;
    pub use crate::domain::audit::AuditEntry;
    pub use crate::domain::permission::{DEFAULT_PERMISSIONS, grants};
    pub use crate::domain::scope::{LEVELS, Scopes};
    pub use crate::domain::tenant::RateLimit;
    pub use crate::domain::{Correlation, ErrorCode, Permission, TenantId, TenantStatus, Tier};
    pub use crate::events::dispatch::install_crypto_provider;
    pub use crate::ledger::import::BudgetWrite;
    pub use crate::ledger::ops::{ActionFacts, Mode, ReserveInput};
    pub use crate::ledger::{Ledger, decode, new_reservation_id};
    pub use crate::runtime_api::reservations::ReserveRequest;
    pub use crate::runtime_api::wire::{Action, Subject, request_hash};
    pub use crate::store::pg::{PgStore, retention};
    pub use crate::store::redis::scripts::Scripts;
    pub use crate::store::redis::{Keys, RedisStore};
}
