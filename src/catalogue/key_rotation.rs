//! Key rotation: a successor minted beside an ACTIVE key, and the predecessor kept valid for a
//! grace period so callers can switch over without an outage. One transaction, one audit
//! entry (`rotateApiKey`), the successor's `api_key.created` event, and an auth-channel
//! announcement so every instance sees the predecessor's new expiry at once.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::Catalogue;
use super::api_keys::lock_active_key;
use super::audit::Actor;
use crate::auth::secret;
use crate::domain::api_key::ApiKey;
use crate::domain::clock::now;
use crate::domain::error::{Error, Result};
use crate::domain::event::EventType;
use crate::events;
use crate::store::pg::api_keys;

/// The longest grace a predecessor may keep: long enough for any deploy, short enough that a
/// leaked key does not outlive its rotation by much.
pub const ROTATION_GRACE_SECONDS_MAX: i64 = 30 * 24 * 3_600;

/// What a rotation made: the successor (its secret shown once) and the predecessor as it now is.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub successor: ApiKey,
    pub secret: String,
    pub predecessor: ApiKey,
}

impl Catalogue {
    /// Mints a successor of the ACTIVE key `key_id` with its tenant, name, permissions, scope
    /// filter, metadata and expiry; the predecessor stays valid for `grace_seconds` more (never
    /// longer than it already would). Refused as a change of the key would be.
    pub async fn rotate_key(&self, actor: &Actor, key_id: &str, grace_seconds: i64) -> Result<Rotation> {
        if !(0..=ROTATION_GRACE_SECONDS_MAX).contains(&grace_seconds) {
            return Err(Error::invalid_field(
                "grace_seconds",
                format!("must be from 0 to {ROTATION_GRACE_SECONDS_MAX}"),
            ));
        }
        let mut tx = self.pg.begin().await?;
        let at = now();
        let (current, digest) = lock_active_key(&mut tx, key_id, at).await?;
        let minted = secret::mint_key().map_err(Error::internal)?;
        let successor = ApiKey {
            key_id: uuid::Uuid::now_v7().to_string(),
            key_prefix: minted.prefix,
            created_at: at,
            last_used_at: None,
            ..current.clone()
        };
        let mut predecessor = current;
        let grace_end: OffsetDateTime = at + Duration::seconds(grace_seconds);
        predecessor.expires_at = predecessor.expires_at.min(grace_end);
        api_keys::update(&mut tx, &predecessor).await?;
        api_keys::insert(&mut tx, &successor, &self.hasher.digest(&minted.secret)).await?;
        let tenant = successor.tenant_id.as_str();
        let details = json!({
            "rotated_from": key_id,
            "grace_seconds": grace_seconds,
            "predecessor_expires_at": predecessor.expires_at.unix_timestamp(),
        });
        let entry = actor.entry("rotateApiKey", tenant, ("api_key", &successor.key_id), 201, details);
        crate::store::pg::audit::append(&mut tx, &entry).await?;
        let data = json!({
            "key_id": successor.key_id, "key_name": successor.name, "new_status": "ACTIVE",
            "permissions": successor.permissions, "rotated_from": key_id,
        });
        events::record(&mut tx, &[actor.event(EventType::ApiKeyCreated, tenant, data)]).await?;
        self.commit_announcing(tx, &[format!("key:{}", hex::encode(&digest))]).await?;
        Ok(Rotation { successor, secret: minted.secret, predecessor })
    }
}
