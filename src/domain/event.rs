//! Events: the spec's `EventType` and `EventCategory` enums, which categories a tenant may
//! see, and the `Event` envelope exactly as it is stored, served and delivered.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::tenant::wire_enum;

/// Owner of system-wide subscriptions and tenant of system events.
pub const SYSTEM_TENANT: &str = "__system__";

wire_enum!(
    EventCategory {
        Budget = "budget",
        Tenant = "tenant",
        ApiKey = "api_key",
        Policy = "policy",
        Reservation = "reservation",
        System = "system",
        Webhook = "webhook",
    }
);

impl EventCategory {
    /// `budget`, `reservation` and `tenant` events are the tenant's own; the rest are
    /// governance events only operators (and `__system__` subscriptions) may see.
    pub fn tenant_accessible(self) -> bool {
        matches!(self, EventCategory::Budget | EventCategory::Reservation | EventCategory::Tenant)
    }
}

wire_enum!(
    EventType {
        BudgetCreated = "budget.created",
        BudgetUpdated = "budget.updated",
        BudgetFunded = "budget.funded",
        BudgetDebited = "budget.debited",
        BudgetReset = "budget.reset",
        BudgetResetSpent = "budget.reset_spent",
        BudgetDebtRepaid = "budget.debt_repaid",
        BudgetFrozen = "budget.frozen",
        BudgetUnfrozen = "budget.unfrozen",
        BudgetClosed = "budget.closed",
        BudgetClosedViaTenantCascade = "budget.closed_via_tenant_cascade",
        BudgetThresholdCrossed = "budget.threshold_crossed",
        BudgetExhausted = "budget.exhausted",
        BudgetOverLimitEntered = "budget.over_limit_entered",
        BudgetOverLimitExited = "budget.over_limit_exited",
        BudgetDebtIncurred = "budget.debt_incurred",
        BudgetBurnRateAnomaly = "budget.burn_rate_anomaly",
        BudgetPeriodRolled = "budget.period_rolled",
        ReservationDenied = "reservation.denied",
        ReservationDenialRateSpike = "reservation.denial_rate_spike",
        ReservationExpired = "reservation.expired",
        ReservationExpiryRateSpike = "reservation.expiry_rate_spike",
        ReservationCommitOverage = "reservation.commit_overage",
        ReservationReleasedViaTenantCascade = "reservation.released_via_tenant_cascade",
        ReservationObservedDenied = "reservation.observed_denied",
        ReservationObservedAllowed = "reservation.observed_allowed",
        QuotaThresholdApproaching = "quota.threshold_approaching",
        QuotaCounterReset = "quota.counter_reset",
        TenantCreated = "tenant.created",
        TenantUpdated = "tenant.updated",
        TenantSuspended = "tenant.suspended",
        TenantReactivated = "tenant.reactivated",
        TenantClosed = "tenant.closed",
        TenantSettingsChanged = "tenant.settings_changed",
        WebhookCreated = "webhook.created",
        WebhookUpdated = "webhook.updated",
        WebhookPaused = "webhook.paused",
        WebhookResumed = "webhook.resumed",
        WebhookDisabled = "webhook.disabled",
        WebhookDeleted = "webhook.deleted",
        WebhookDisabledViaTenantCascade = "webhook.disabled_via_tenant_cascade",
        ApiKeyCreated = "api_key.created",
        ApiKeyRevoked = "api_key.revoked",
        ApiKeyRevokedViaTenantCascade = "api_key.revoked_via_tenant_cascade",
        ApiKeyExpired = "api_key.expired",
        ApiKeyPermissionsChanged = "api_key.permissions_changed",
        ApiKeyAuthFailed = "api_key.auth_failed",
        ApiKeyAuthFailureRateSpike = "api_key.auth_failure_rate_spike",
        PolicyCreated = "policy.created",
        PolicyUpdated = "policy.updated",
        PolicyDeleted = "policy.deleted",
        SystemStoreConnectionLost = "system.store_connection_lost",
        SystemStoreConnectionRestored = "system.store_connection_restored",
        SystemHighLatency = "system.high_latency",
        SystemWebhookDeliveryFailed = "system.webhook_delivery_failed",
        SystemWebhookTest = "system.webhook_test",
        SystemTierChanged = "system.tier_changed",
    }
);

impl EventType {
    /// The category is the type's prefix; the spec names no category for the v0.1.26
    /// `quota.*` events, which report on policy quotas, so they are `policy` events (operators'
    /// governance events, like the policies they count against).
    pub fn category(self) -> EventCategory {
        let prefix = self.as_str().split('.').next().unwrap_or_default();
        if prefix == "quota" {
            return EventCategory::Policy;
        }
        EventCategory::parse(prefix).unwrap_or(EventCategory::System)
    }
}

/// `Event.actor`: who or what caused the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventActor {
    #[serde(rename = "type")]
    pub actor_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

impl EventActor {
    pub fn of(actor_type: &str, key_id: Option<String>) -> Self {
        Self { actor_type: actor_type.to_string(), key_id, source_ip: None }
    }
}

/// The spec's `Event` envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub event_id: String,
    pub event_type: EventType,
    pub category: EventCategory,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<EventActor>,
    pub source: String,
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// Emitting services, as `Event.source` names them.
pub const SOURCE_SERVER: &str = "cycles-server";
pub const SOURCE_ADMIN: &str = "cycles-admin";
pub const SOURCE_SWEEPER: &str = "expiry-sweeper";
pub const SOURCE_DISPATCHER: &str = "webhook-dispatcher";

/// A fresh event id: `evt_` and 32 hex digits of a UUIDv7 (time-ordered, unique).
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

impl Event {
    /// An event with the envelope filled from its type; callers set the optional fields.
    pub fn new(event_type: EventType, tenant_id: &str, source: &str, data: Value) -> Self {
        Self {
            event_id: new_event_id(),
            event_type,
            category: event_type.category(),
            timestamp: crate::domain::clock::now(),
            tenant_id: tenant_id.to_string(),
            scope: None,
            actor: None,
            source: source.to_string(),
            data,
            correlation_id: None,
            request_id: None,
            trace_id: None,
            metadata: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_maps_to_the_category_of_its_prefix() {
        assert_eq!(EventType::ALL.len(), 57);
        for t in EventType::ALL {
            let prefix = t.as_str().split('.').next().unwrap();
            let prefix = if prefix == "quota" { "policy" } else { prefix };
            assert_eq!(t.category().as_str(), prefix, "{t}");
        }
        let tenant_visible = EventType::ALL.iter().filter(|t| t.category().tenant_accessible()).count();
        assert_eq!(tenant_visible, 32);
    }
}
