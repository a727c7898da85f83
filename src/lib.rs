//! Tollgate: a budget reservation and admission engine speaking the Cycles protocol.
//!
//! Data flows one way: HTTP (`runtime_api`, `admin_api`, shared `http`) → `auth` →
//! `admission` (rate limits, priority gate) → `catalogue` (admin rules) / `ledger` → `store`
//! (`pg`, `redis`). `domain` holds pure types
//! used by every layer; `error` is the one error table; `app` wires it all together; `workers`
//! are the background loops. See README §Architecture for the full map and invariants.

pub mod admin_api;
pub mod admission;
pub mod app;
pub mod auth;
pub mod canonical;
pub mod catalogue;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod ledger;
pub mod runtime_api;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod workers;
