//! What every handler shares: the catalogue (Postgres), the ledger (Redis) and the
//! authenticator.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::catalogue::Catalogue;
use crate::ledger::Ledger;

#[derive(Clone)]
pub struct AppState {
    pub catalogue: Catalogue,
    pub ledger: Ledger,
    pub auth: Arc<Authenticator>,
    pub admission: Arc<Admission>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
