//! Black-box tests of Tollgate against real Redis and Postgres: one binary, every test on its
//! own database and Redis key prefix (see `helpers`), so they run in parallel.

mod api_keys;
mod audit;
mod auth;
mod bad_input;
mod fixture;
mod runtime_basics;
mod health;
mod helpers;
mod lifecycle;
mod sdk_clients;
mod tenants;
