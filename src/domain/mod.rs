//! Pure types of the catalogue and the ledger: identifiers validated once, enums with the
//! spec's spellings, the error every lower layer answers, the clock and correlation ids, and
//! the rules that need no store. Nothing here does IO or knows HTTP.

pub mod access;
pub mod amount;
pub mod api_key;
pub mod audit;
pub mod audit_export;
pub mod clock;
pub mod correlation;
pub mod error;
pub mod event;
pub mod period;
pub mod permission;
pub mod policy;
pub mod scope;
pub mod tenant;
pub mod tier;
pub mod webhook;

pub use correlation::Correlation;
pub use error::{Error, ErrorCode};
pub use permission::Permission;
pub use tenant::{CommitOveragePolicy, TenantId, TenantStatus, Tier};
