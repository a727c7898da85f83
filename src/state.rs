//! What every handler shares: the catalogue (Postgres + Redis) and the authenticator.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Authenticator;
use crate::catalogue::Catalogue;

#[derive(Clone)]
pub struct AppState {
    pub catalogue: Catalogue,
    pub auth: Arc<Authenticator>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
