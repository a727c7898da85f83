//! Admin principals, roles and role assignments. Each change writes one audit entry in its
//! own transaction and announces what it invalidates on the auth channel (`principal:<id>` or
//! `roles`), so every instance's token cache drops it at commit.
//!
//! Rules: a tenant role only for a tenant-bound principal and a platform role only for a
//! platform one; built-in roles are never changed; the last active `owner` cannot lose the
//! role or be deactivated.

use serde_json::json;

use super::Catalogue;
use super::audit::Actor;
use crate::domain::access::{
    self, AdminPermission, OWNER_ROLE, Principal, PrincipalStatus, PrincipalType, Role, RoleScope,
};
use crate::domain::audit::ADMIN_TENANT;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::tenant::{TenantId, TenantStatus};
use crate::store::pg::page::{Page, PageSpec};
use crate::store::pg::principals::{self as store, PrincipalFilter};
use crate::store::pg::{PgTx, audit, tenants};

/// The auth-channel payload that drops every cached admin token (role permissions changed).
pub const ROLES_CHANGED: &str = "roles";

pub fn principal_changed(id: &str) -> String {
    format!("principal:{id}")
}

#[derive(Debug, Clone)]
pub struct NewPrincipal {
    pub principal_type: PrincipalType,
    pub name: String,
    pub tenant_id: Option<TenantId>,
}

#[derive(Debug, Clone, Default)]
pub struct PrincipalPatch {
    pub name: Option<String>,
    pub status: Option<PrincipalStatus>,
}

fn principal_not_found(id: &str) -> Error {
    Error::not_found(format!("principal {id} not found"))
}

fn role_not_found(id: &str) -> Error {
    Error::not_found(format!("role {id} not found"))
}

fn tenant_of(p: &Principal) -> &str {
    p.tenant_id.as_ref().map_or(ADMIN_TENANT, TenantId::as_str)
}

/// Refuses permissions a role of `scope` may not hold, naming the offending entry.
pub fn check_scope(scope: RoleScope, perms: &[AdminPermission], field: &str) -> Result<()> {
    if scope == RoleScope::Tenant
        && let Some((i, p)) = perms.iter().enumerate().find(|(_, p)| !p.tenant_scopable())
    {
        return Err(Error::invalid_field(&format!("{field}[{i}]"), format!("{p} cannot be held by a tenant role")));
    }
    Ok(())
}

/// The last active owner must keep the role: without one, only the bootstrap key could
/// administer principals. Locks the owner role's row so two removals serialise.
async fn keep_an_owner(tx: &mut PgTx, p: &Principal) -> Result<()> {
    if p.status != PrincipalStatus::Active || !p.role_ids.iter().any(|r| r == OWNER_ROLE) {
        return Ok(());
    }
    store::get_role_for_update(tx, OWNER_ROLE).await?;
    if store::active_holders(tx, OWNER_ROLE).await? <= 1 {
        return Err(Error::new(
            ErrorCode::AlreadyInState,
            format!("principal {}: is the last active owner", p.principal_id),
        )
        .with_details(json!({ "field": "role_id" })));
    }
    Ok(())
}

impl Catalogue {
    pub async fn create_principal(&self, actor: &Actor, new: NewPrincipal) -> Result<Principal> {
        let at = now();
        let p = Principal {
            principal_id: format!("prn_{}", uuid::Uuid::now_v7().simple()),
            principal_type: new.principal_type,
            name: new.name,
            status: PrincipalStatus::Active,
            tenant_id: new.tenant_id,
            created_at: at,
            updated_at: at,
            role_ids: Vec::new(),
        };
        let mut tx = self.pg.begin().await?;
        if let Some(t) = &p.tenant_id {
            let found = tenants::get_for_update(&mut tx, t.as_str()).await?;
            match found {
                None => return Err(Error::new(ErrorCode::TenantNotFound, format!("tenant_id: tenant {t} not found"))),
                Some(t) if t.status == TenantStatus::Closed => {
                    return Err(Error::new(
                        ErrorCode::TenantClosed,
                        format!("tenant_id: tenant {} is closed", t.tenant_id),
                    ));
                }
                Some(_) => {}
            }
        }
        store::insert_principal(&mut tx, &p).await?;
        let extra = json!({ "type": p.principal_type, "name": p.name });
        let entry = actor.entry("createPrincipal", tenant_of(&p), ("principal", &p.principal_id), 201, extra);
        audit::append(&mut tx, &entry).await?;
        crate::store::pg::commit(tx).await?;
        Ok(p)
    }

    pub async fn get_principal(&self, id: &str) -> Result<Principal> {
        store::get_principal(self.pg.pool(), id).await?.ok_or_else(|| principal_not_found(id))
    }

    pub async fn list_principals(&self, filter: &PrincipalFilter, page: &PageSpec) -> Result<Page<Principal>> {
        Ok(store::list_principals(self.pg.pool(), filter, page).await?)
    }

    pub async fn update_principal(&self, actor: &Actor, id: &str, patch: PrincipalPatch) -> Result<Principal> {
        let mut tx = self.pg.begin().await?;
        let current = store::get_principal_for_update(&mut tx, id).await?.ok_or_else(|| principal_not_found(id))?;
        if patch.status == Some(PrincipalStatus::Deactivated) {
            keep_an_owner(&mut tx, &current).await?;
        }
        let mut p = current.clone();
        let mut changed = Vec::new();
        if let Some(name) = patch.name.filter(|n| *n != p.name) {
            p.name = name;
            changed.push("name");
        }
        if let Some(status) = patch.status.filter(|s| *s != p.status) {
            p.status = status;
            changed.push("status");
        }
        if p != current {
            p.updated_at = now();
            store::update_principal(&mut tx, &p).await?;
        }
        let extra = json!({ "changed_fields": changed, "new_status": p.status });
        let entry = actor.entry("updatePrincipal", tenant_of(&p), ("principal", id), 200, extra);
        audit::append(&mut tx, &entry).await?;
        self.commit_announcing(tx, &[principal_changed(id)]).await?;
        Ok(p)
    }

    pub async fn create_role(
        &self,
        actor: &Actor,
        name: String,
        scope: RoleScope,
        permissions: Vec<AdminPermission>,
    ) -> Result<Role> {
        check_scope(scope, &permissions, "permissions")?;
        let role = Role {
            role_id: format!("rol_{}", uuid::Uuid::now_v7().simple()),
            name,
            scope,
            permissions,
            built_in: false,
            created_at: now(),
        };
        let mut tx = self.pg.begin().await?;
        if store::role_name_taken(&mut tx, &role.name).await? {
            return Err(Error::new(ErrorCode::DuplicateResource, format!("name: a role named {} exists", role.name))
                .with_details(json!({ "field": "name" })));
        }
        if store::count_roles(&mut tx).await? >= access::ROLES_MAX as i64 {
            return Err(Error::invalid(format!("at most {} roles may exist", access::ROLES_MAX)));
        }
        store::insert_role(&mut tx, &role).await?;
        let extra = json!({ "name": role.name, "scope": role.scope, "permissions": role.permissions });
        let entry = actor.entry("createRole", ADMIN_TENANT, ("role", &role.role_id), 201, extra);
        audit::append(&mut tx, &entry).await?;
        crate::store::pg::commit(tx).await?;
        Ok(role)
    }

    pub async fn list_roles(&self, page: &PageSpec) -> Result<Page<Role>> {
        Ok(store::list_roles(self.pg.pool(), page).await?)
    }

    /// Adds (`add`) or removes permissions of a custom role; built-in roles are fixed.
    pub async fn change_role(&self, actor: &Actor, id: &str, add: bool, perms: Vec<AdminPermission>) -> Result<Role> {
        let mut tx = self.pg.begin().await?;
        let mut role = store::get_role_for_update(&mut tx, id).await?.ok_or_else(|| role_not_found(id))?;
        if role.built_in {
            return Err(Error::new(ErrorCode::AlreadyInState, format!("role_id: {id} is built in and cannot change"))
                .with_details(json!({ "field": "role_id" })));
        }
        if add {
            check_scope(role.scope, &perms, "permissions")?;
            for p in &perms {
                if !role.permissions.contains(p) {
                    role.permissions.push(*p);
                }
            }
        } else {
            if let Some(p) = perms.iter().find(|p| !role.permissions.contains(p)) {
                return Err(Error::not_found(format!("permission: role {id} does not hold {p}")));
            }
            role.permissions.retain(|p| !perms.contains(p));
        }
        store::set_role_permissions(&mut tx, id, &role.permissions).await?;
        let op = if add { "addRolePermissions" } else { "removeRolePermission" };
        let extra = json!({ "permissions": perms, "now": role.permissions });
        let entry = actor.entry(op, ADMIN_TENANT, ("role", id), 200, extra);
        audit::append(&mut tx, &entry).await?;
        self.commit_announcing(tx, &[ROLES_CHANGED.to_string()]).await?;
        Ok(role)
    }

    /// Deletes a custom role that no principal holds (unassign it first): a built-in role, or
    /// one still assigned, is refused with 409 and nothing changes.
    pub async fn delete_role(&self, actor: &Actor, id: &str) -> Result<()> {
        let mut tx = self.pg.begin().await?;
        let role = store::get_role_for_update(&mut tx, id).await?.ok_or_else(|| role_not_found(id))?;
        if role.built_in {
            return Err(Error::new(
                ErrorCode::AlreadyInState,
                format!("role_id: {id} is built in and cannot be deleted"),
            )
            .with_details(json!({ "field": "role_id" })));
        }
        let held = store::holders(&mut tx, id).await?;
        if held > 0 {
            return Err(Error::new(ErrorCode::AlreadyInState, format!("role_id: {id} is held by {held} principal(s)"))
                .with_details(json!({ "field": "role_id" })));
        }
        store::delete_role(&mut tx, id).await?;
        let entry = actor.entry("deleteRole", ADMIN_TENANT, ("role", id), 200, json!({ "name": role.name }));
        audit::append(&mut tx, &entry).await?;
        crate::store::pg::commit(tx).await?;
        Ok(())
    }

    pub async fn assign_role(&self, actor: &Actor, principal_id: &str, role_id: &str) -> Result<Principal> {
        let mut tx = self.pg.begin().await?;
        let mut p = store::get_principal_for_update(&mut tx, principal_id)
            .await?
            .ok_or_else(|| principal_not_found(principal_id))?;
        let role = store::get_role_for_update(&mut tx, role_id)
            .await?
            .ok_or_else(|| Error::invalid_field("role_id", format!("no role {role_id}")))?;
        match (role.scope, &p.tenant_id) {
            (RoleScope::Tenant, None) => {
                return Err(Error::invalid_field("role_id", "a tenant role needs a principal bound to a tenant"));
            }
            (RoleScope::Platform, Some(_)) => {
                return Err(Error::invalid_field("role_id", "a platform role cannot go to a tenant-bound principal"));
            }
            _ => {}
        }
        if p.role_ids.len() >= access::ROLES_MAX {
            return Err(Error::invalid_field(
                "role_id",
                format!("a principal holds at most {} roles", access::ROLES_MAX),
            ));
        }
        if store::assign(&mut tx, principal_id, role_id, now()).await? {
            p.role_ids.push(role_id.to_string());
            p.role_ids.sort();
        }
        let extra = json!({ "role_id": role_id });
        let entry = actor.entry("assignRole", tenant_of(&p), ("principal", principal_id), 200, extra);
        audit::append(&mut tx, &entry).await?;
        self.commit_announcing(tx, &[principal_changed(principal_id)]).await?;
        Ok(p)
    }

    pub async fn unassign_role(&self, actor: &Actor, principal_id: &str, role_id: &str) -> Result<Principal> {
        let mut tx = self.pg.begin().await?;
        let mut p = store::get_principal_for_update(&mut tx, principal_id)
            .await?
            .ok_or_else(|| principal_not_found(principal_id))?;
        if !p.role_ids.iter().any(|r| r == role_id) {
            return Err(Error::not_found(format!("role_id: principal {principal_id} does not hold {role_id}")));
        }
        if role_id == OWNER_ROLE {
            keep_an_owner(&mut tx, &p).await?;
        }
        store::unassign(&mut tx, principal_id, role_id).await?;
        p.role_ids.retain(|r| r != role_id);
        let extra = json!({ "role_id": role_id });
        let entry = actor.entry("unassignRole", tenant_of(&p), ("principal", principal_id), 200, extra);
        audit::append(&mut tx, &entry).await?;
        self.commit_announcing(tx, &[principal_changed(principal_id)]).await?;
        Ok(p)
    }
}
