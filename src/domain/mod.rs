//! Pure types of the catalogue and the ledger: identifiers validated once, enums with the
//! spec's spellings, and the rules that need no store. Nothing here does IO.

pub mod amount;
pub mod api_key;
pub mod audit;
pub mod event;
pub mod permission;
pub mod scope;
pub mod tenant;
pub mod webhook;

pub use permission::Permission;
pub use tenant::{CommitOveragePolicy, TenantId, TenantStatus, Tier};
