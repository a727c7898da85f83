//! The tenant's published policy set (`Keys::policies`): read whole when the engine finds its
//! copy stale. Written only by `lua/policy_publish.lua`.

use super::RedisStore;
use crate::store::StoreResult;

impl RedisStore {
    /// The stored `<generation>\n<JSON>` of the tenant's policy set, if one was published.
    pub async fn policy_set(&self, tenant: &str) -> StoreResult<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.keys.policies(tenant));
        self.query(&cmd).await
    }
}
