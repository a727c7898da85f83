//! Policy versions (a Tollgate extension, after DVARA's): every change stores the resulting
//! rules as a numbered version and the last [`VERSIONS_KEPT`](super::VERSIONS_KEPT) are kept; a
//! rollback stores a new version whose rules equal an earlier one's.

use super::{Catalogue, Viewer, check_name_free, lock_tenant, not_found, record, store};
use crate::catalogue::audit::Actor;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::policy::{Policy, check_rules, differences};
use crate::store::pg;

impl Catalogue {
    /// The policy and its stored versions, newest first.
    pub async fn policy_versions(&self, viewer: Viewer<'_>, id: &str) -> Result<(Policy, Vec<store::Version>)> {
        let p = self.get_policy(viewer, id).await?;
        let versions = store::versions(self.pg.pool(), id).await?;
        Ok((p, versions))
    }

    /// Stores a new version of the policy whose rules are those of `version`. A version never
    /// stored, or pruned, is 404.
    pub async fn rollback_policy(&self, actor: &Actor, viewer: Viewer<'_>, id: &str, version: i64) -> Result<Policy> {
        let wanted = i32::try_from(version)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| Error::invalid_field("version", "must be a version number of at least 1"))?;
        let owner = self.get_policy(viewer, id).await?.tenant_id;
        let mut tx = self.pg.begin().await?;
        lock_tenant(&mut tx, &owner).await?;
        let current = store::get_for_update(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
        let restored = store::version(&mut tx, id, wanted).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("policy {id} has no version {wanted} (the last {} versions are kept)", super::VERSIONS_KEPT),
            )
            .with_details(serde_json::json!({ "field": "version" }))
        })?;
        check_rules(&restored.rules, &owner)?;
        let changed = differences(&current.rules, &restored.rules);
        let mut next = current.clone();
        next.rules = restored.rules;
        next.version += 1;
        next.updated_at = now();
        if changed.contains(&"name") {
            check_name_free(&mut tx, &next).await?;
        }
        record(&mut tx, actor, &next, ("rollback", Some(wanted)), &changed).await?;
        pg::commit(tx).await?;
        self.publish_policies(&owner).await?;
        Ok(next)
    }
}
