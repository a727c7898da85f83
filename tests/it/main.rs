//! Black-box tests of Tollgate against real Redis and Postgres: one binary, every test on its
//! own database and Redis key prefix (see `helpers`), so they run in parallel.

mod api_keys;
mod audit;
mod auth;
mod bad_input;
mod health;
mod helpers;
mod lifecycle;
mod tenants;
