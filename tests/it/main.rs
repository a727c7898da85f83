//! Black-box tests of Tollgate against real Redis and Postgres: one binary, every test on its
//! own database and Redis key prefix (see `helpers`), so they run in parallel.

mod access;
mod access_logs;
mod access_scope;
mod admission;
mod api_keys;
mod architecture;
mod audit;
mod auth;
mod bad_input;
mod budgets_admin;
mod cluster;
mod crash;
mod events;
mod fixture;
mod health;
mod helpers;
mod ledger_model;
mod lifecycle;
mod metrics;
mod pg_outage;
mod runtime_amounts;
mod runtime_basics;
mod runtime_concurrency;
mod runtime_errors;
mod runtime_idempotency;
mod runtime_lists;
mod runtime_settle;
mod sdk_clients;
mod tenants;
mod webhooks;
