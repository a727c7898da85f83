//! The spec's `Permission` enum and its NORMATIVE wildcard semantics:
//! `admin:write` satisfies any `*:write`, `admin:read` any `*:read`, never the reverse;
//! runtime `reservations:*` permissions are satisfied only by themselves.

use super::tenant::wire_enum;
use serde::{Deserialize, Serialize};

wire_enum!(
    Permission {
        ReservationsCreate = "reservations:create",
        ReservationsCommit = "reservations:commit",
        ReservationsRelease = "reservations:release",
        ReservationsExtend = "reservations:extend",
        ReservationsList = "reservations:list",
        BalancesRead = "balances:read",
        BudgetsRead = "budgets:read",
        BudgetsWrite = "budgets:write",
        PoliciesRead = "policies:read",
        PoliciesWrite = "policies:write",
        WebhooksRead = "webhooks:read",
        WebhooksWrite = "webhooks:write",
        EventsRead = "events:read",
        AdminRead = "admin:read",
        AdminWrite = "admin:write",
        AdminTenantsRead = "admin:tenants:read",
        AdminTenantsWrite = "admin:tenants:write",
        AdminBudgetsRead = "admin:budgets:read",
        AdminBudgetsWrite = "admin:budgets:write",
        AdminPoliciesRead = "admin:policies:read",
        AdminPoliciesWrite = "admin:policies:write",
        AdminApikeysRead = "admin:apikeys:read",
        AdminApikeysWrite = "admin:apikeys:write",
        AdminWebhooksRead = "admin:webhooks:read",
        AdminWebhooksWrite = "admin:webhooks:write",
        AdminEventsRead = "admin:events:read",
        AdminAuditRead = "admin:audit:read",
        ActionQuotasRead = "action_quotas:read",
    }
);

/// Granted when `createApiKey` names no permissions (the spec's list; webhooks and events
/// must be granted explicitly).
pub const DEFAULT_PERMISSIONS: &[Permission] = &[
    Permission::ReservationsCreate,
    Permission::ReservationsCommit,
    Permission::ReservationsRelease,
    Permission::ReservationsExtend,
    Permission::ReservationsList,
    Permission::BalancesRead,
    Permission::BudgetsRead,
    Permission::BudgetsWrite,
    Permission::PoliciesRead,
    Permission::PoliciesWrite,
];

impl Permission {
    fn is_runtime(self) -> bool {
        self.as_str().starts_with("reservations:")
    }

    /// Whether holding `self` satisfies a route that requires `required`.
    pub fn satisfies(self, required: Permission) -> bool {
        if self == required {
            return true;
        }
        if required.is_runtime() {
            return false;
        }
        match self {
            Permission::AdminWrite => required.as_str().ends_with(":write"),
            Permission::AdminRead => required.as_str().ends_with(":read"),
            _ => false,
        }
    }
}

/// Whether any held permission satisfies `required`.
pub fn grants(held: &[Permission], required: Permission) -> bool {
    held.iter().any(|p| p.satisfies(required))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_read_satisfies_reads_but_not_writes() {
        assert!(grants(&[Permission::AdminRead], Permission::BalancesRead));
        assert!(!grants(&[Permission::AdminRead], Permission::BudgetsWrite));
        assert!(grants(&[Permission::AdminWrite], Permission::WebhooksWrite));
    }

    #[test]
    fn admin_wildcards_do_not_satisfy_runtime_permissions() {
        assert!(!grants(&[Permission::AdminWrite, Permission::AdminRead], Permission::ReservationsCreate));
        assert!(grants(&[Permission::ReservationsCreate], Permission::ReservationsCreate));
    }
}
