//! Admin access control as plain data: the closed list of admin-plane permissions (one per
//! operation family), principals, roles (built-in ones defined here, so the README table and
//! the code are one list), and personal access tokens. Nothing here does IO.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::tenant::{TenantId, wire_enum};

wire_enum!(
    /// What an admin-plane route requires. Each admin route maps to exactly one of these in
    /// `admin_api::access::ROUTES`.
    AdminPermission {
        TenantsRead = "tenants:read",
        TenantsWrite = "tenants:write",
        BudgetsRead = "budgets:read",
        BudgetsWrite = "budgets:write",
        BudgetsFund = "budgets:fund",
        PoliciesRead = "policies:read",
        PoliciesWrite = "policies:write",
        KeysRead = "keys:read",
        KeysWrite = "keys:write",
        AuditRead = "audit:read",
        AuditVerify = "audit:verify",
        EventsRead = "events:read",
        WebhooksRead = "webhooks:read",
        WebhooksWrite = "webhooks:write",
        ConfigRead = "config:read",
        ConfigWrite = "config:write",
        ConfigExport = "config:export",
        ConfigImport = "config:import",
        SystemRead = "system:read",
        PrincipalsRead = "principals:read",
        PrincipalsAdmin = "principals:admin",
    }
);

impl AdminPermission {
    /// Whether a tenant-scoped role may hold it. The others act across tenants (create tenants,
    /// verify the whole audit chain, edit the global config, manage principals and roles), so
    /// only platform roles carry them.
    pub fn tenant_scopable(self) -> bool {
        use AdminPermission as P;
        !matches!(
            self,
            P::TenantsWrite
                | P::AuditVerify
                | P::ConfigRead
                | P::ConfigWrite
                | P::ConfigExport
                | P::ConfigImport
                | P::SystemRead
                | P::PrincipalsAdmin
        )
    }
}

wire_enum!(
    /// Where a role applies: across every tenant, or within its principal's tenant.
    RoleScope { Platform = "platform", Tenant = "tenant" }
);

wire_enum!(PrincipalType { User = "user", Service = "service" });

wire_enum!(PrincipalStatus { Active = "ACTIVE", Deactivated = "DEACTIVATED" });

/// The built-in platform role that holds every permission (the bootstrap key acts as it).
pub const OWNER_ROLE: &str = "owner";

use AdminPermission as P;

const POLICY_ADMIN: &[AdminPermission] =
    &[P::TenantsRead, P::BudgetsRead, P::PoliciesRead, P::PoliciesWrite, P::EventsRead, P::AuditRead, P::WebhooksRead];
const BILLING_ADMIN: &[AdminPermission] =
    &[P::TenantsRead, P::BudgetsRead, P::BudgetsWrite, P::BudgetsFund, P::EventsRead, P::AuditRead];
const TENANT_ADMIN: &[AdminPermission] = &[
    P::TenantsRead,
    P::BudgetsRead,
    P::BudgetsWrite,
    P::BudgetsFund,
    P::PoliciesRead,
    P::PoliciesWrite,
    P::KeysRead,
    P::KeysWrite,
    P::AuditRead,
    P::EventsRead,
    P::WebhooksRead,
    P::WebhooksWrite,
    P::PrincipalsRead,
];
const TENANT_DEVELOPER: &[AdminPermission] = &[
    P::TenantsRead,
    P::BudgetsRead,
    P::PoliciesRead,
    P::KeysRead,
    P::KeysWrite,
    P::EventsRead,
    P::WebhooksRead,
    P::WebhooksWrite,
];
const TENANT_VIEWER: &[AdminPermission] =
    &[P::TenantsRead, P::BudgetsRead, P::PoliciesRead, P::KeysRead, P::EventsRead, P::WebhooksRead];

/// A built-in role: its id (also its row in `roles`), wire name, scope and permissions.
pub struct BuiltIn {
    pub role_id: &'static str,
    pub name: &'static str,
    pub scope: RoleScope,
    pub permissions: &'static [AdminPermission],
}

pub const BUILT_IN_ROLES: &[BuiltIn] = &[
    BuiltIn { role_id: OWNER_ROLE, name: "owner", scope: RoleScope::Platform, permissions: AdminPermission::ALL },
    BuiltIn { role_id: "policy-admin", name: "policy-admin", scope: RoleScope::Platform, permissions: POLICY_ADMIN },
    BuiltIn { role_id: "billing-admin", name: "billing-admin", scope: RoleScope::Platform, permissions: BILLING_ADMIN },
    BuiltIn { role_id: "tenant-admin", name: "admin", scope: RoleScope::Tenant, permissions: TENANT_ADMIN },
    BuiltIn { role_id: "tenant-developer", name: "developer", scope: RoleScope::Tenant, permissions: TENANT_DEVELOPER },
    BuiltIn { role_id: "tenant-viewer", name: "viewer", scope: RoleScope::Tenant, permissions: TENANT_VIEWER },
];

pub fn built_in(role_id: &str) -> Option<&'static BuiltIn> {
    BUILT_IN_ROLES.iter().find(|b| b.role_id == role_id)
}

/// Longest principal, role or token name.
pub const NAME_LEN_MAX: usize = 128;
/// Most custom roles a principal may hold, and most roles in the catalogue: bounds the
/// permission union computed on every cache fill.
pub const ROLES_MAX: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub principal_id: String,
    pub principal_type: PrincipalType,
    pub name: String,
    pub status: PrincipalStatus,
    /// A tenant-bound principal sees and changes only this tenant.
    pub tenant_id: Option<TenantId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The ids of the roles assigned to it.
    pub role_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub role_id: String,
    pub name: String,
    pub scope: RoleScope,
    pub permissions: Vec<AdminPermission>,
    pub built_in: bool,
    pub created_at: OffsetDateTime,
}

impl Role {
    /// A role as stored: built-in rows take their permissions from [`BUILT_IN_ROLES`].
    pub fn effective(mut self) -> Self {
        if let Some(b) = built_in(&self.role_id) {
            self.built_in = true;
            self.name = b.name.to_string();
            self.scope = b.scope;
            self.permissions = b.permissions.to_vec();
        }
        self
    }
}

/// A personal access token (the secret is never kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Pat {
    pub key_id: String,
    pub principal_id: String,
    pub name: String,
    pub key_prefix: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// Who is calling the admin plane, as the access check and the audit log see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminIdentity {
    /// `None` for the bootstrap key from the environment, which acts as `owner`.
    pub principal_id: Option<String>,
    /// The PAT the request carried.
    pub key_id: Option<String>,
    pub tenant_id: Option<TenantId>,
    pub permissions: Vec<AdminPermission>,
}

impl AdminIdentity {
    pub fn bootstrap() -> Self {
        Self { principal_id: None, key_id: None, tenant_id: None, permissions: AdminPermission::ALL.to_vec() }
    }

    /// The audit log's actor: the principal's id, or `admin` for the bootstrap key.
    pub fn actor(&self) -> &str {
        self.principal_id.as_deref().unwrap_or("admin")
    }

    pub fn holds(&self, p: AdminPermission) -> bool {
        self.permissions.contains(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_roles_hold_only_tenant_scopable_permissions() {
        for b in BUILT_IN_ROLES.iter().filter(|b| b.scope == RoleScope::Tenant) {
            assert!(b.permissions.iter().all(|p| p.tenant_scopable()), "{}", b.name);
        }
    }

    #[test]
    fn built_in_role_ids_are_the_migration_rows() {
        let sql = include_str!("../../migrations/0005_access.sql");
        for b in BUILT_IN_ROLES {
            assert!(sql.contains(&format!("('{}', '{}', '{}', TRUE)", b.role_id, b.name, b.scope)), "{}", b.role_id);
        }
    }
}
