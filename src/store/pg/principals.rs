//! SQL for `principals`, `roles`, `principal_roles` and `principal_tokens`.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::PgTx;
use super::page::{After, Page, PageSpec, after_of, finish};
use crate::domain::access::{AdminPermission, Pat, Principal, PrincipalStatus, PrincipalType, Role, RoleScope};
use crate::domain::tenant::TenantId;
use crate::store::{StoreError, StoreResult};

const PRINCIPAL_COLUMNS: &str = "p.principal_id, p.type, p.name, p.status, p.tenant_id, p.created_at, p.updated_at, \
    ARRAY(SELECT r.role_id FROM principal_roles r WHERE r.principal_id = p.principal_id ORDER BY r.role_id) AS role_ids";

#[derive(FromRow)]
struct PrincipalRow {
    principal_id: String,
    #[sqlx(rename = "type")]
    principal_type: String,
    name: String,
    status: String,
    tenant_id: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    role_ids: Vec<String>,
}

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;

    fn try_from(r: PrincipalRow) -> StoreResult<Self> {
        let corrupt = |what: &str| StoreError::Internal(format!("principals row {} has a bad {what}", r.principal_id));
        Ok(Principal {
            principal_type: PrincipalType::parse(&r.principal_type).ok_or_else(|| corrupt("type"))?,
            status: PrincipalStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
            tenant_id: r.tenant_id.as_deref().map(TenantId::parse).transpose().map_err(|_| corrupt("tenant_id"))?,
            principal_id: r.principal_id,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
            role_ids: r.role_ids,
        })
    }
}

#[derive(FromRow)]
struct RoleRow {
    role_id: String,
    name: String,
    scope: String,
    permissions: Vec<String>,
    built_in: bool,
    created_at: OffsetDateTime,
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;

    fn try_from(r: RoleRow) -> StoreResult<Self> {
        let corrupt = |what: &str| StoreError::Internal(format!("roles row {} has a bad {what}", r.role_id));
        let permissions = r
            .permissions
            .iter()
            .map(|p| AdminPermission::parse(p).ok_or_else(|| corrupt("permission")))
            .collect::<StoreResult<_>>()?;
        Ok(Role {
            scope: RoleScope::parse(&r.scope).ok_or_else(|| corrupt("scope"))?,
            permissions,
            role_id: r.role_id,
            name: r.name,
            built_in: r.built_in,
            created_at: r.created_at,
        }
        .effective())
    }
}

fn strings(perms: &[AdminPermission]) -> Vec<String> {
    perms.iter().map(|p| p.as_str().to_string()).collect()
}

pub async fn insert_principal(tx: &mut PgTx, p: &Principal) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO principals (principal_id, type, name, status, tenant_id, created_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&p.principal_id)
    .bind(p.principal_type.as_str())
    .bind(&p.name)
    .bind(p.status.as_str())
    .bind(p.tenant_id.as_ref().map(TenantId::as_str))
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_principal(tx: &mut PgTx, p: &Principal) -> StoreResult<()> {
    sqlx::query("UPDATE principals SET name=$2, status=$3, updated_at=$4 WHERE principal_id=$1")
        .bind(&p.principal_id)
        .bind(&p.name)
        .bind(p.status.as_str())
        .bind(p.updated_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn get_principal(pool: &sqlx::PgPool, id: &str) -> StoreResult<Option<Principal>> {
    let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals p WHERE p.principal_id = $1");
    let row: Option<PrincipalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Principal::try_from).transpose()
}

/// Reads a principal and locks its row, so concurrent changes to it serialise.
pub async fn get_principal_for_update(tx: &mut PgTx, id: &str) -> StoreResult<Option<Principal>> {
    let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals p WHERE p.principal_id = $1 FOR UPDATE");
    let row: Option<PrincipalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Principal::try_from).transpose()
}

#[derive(Debug, Default, Clone)]
pub struct PrincipalFilter {
    pub tenant_id: Option<String>,
    pub status: Option<PrincipalStatus>,
    pub search: Option<String>,
}

pub async fn list_principals(
    pool: &sqlx::PgPool,
    filter: &PrincipalFilter,
    page: &PageSpec,
) -> StoreResult<Page<Principal>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {PRINCIPAL_COLUMNS}, {} FROM principals p WHERE TRUE",
        page.cursor_columns()
    ));
    if let Some(tenant) = &filter.tenant_id {
        qb.push(" AND p.tenant_id = ").push_bind(tenant.clone());
    }
    if let Some(status) = filter.status {
        qb.push(" AND p.status = ").push_bind(status.as_str());
    }
    if let Some(search) = &filter.search {
        let pattern = super::like_pattern(search);
        qb.push(" AND (p.principal_id ILIKE ").push_bind(pattern.clone());
        qb.push(" OR p.name ILIKE ").push_bind(pattern).push(")");
    }
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((Principal::try_from(PrincipalRow::from_row(r)?)?, after_of(r)?)))
        .collect::<StoreResult<Vec<(Principal, After)>>>()?;
    Ok(finish(rows, page.limit))
}

pub async fn insert_role(tx: &mut PgTx, role: &Role) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO roles (role_id, name, scope, permissions, built_in, created_at) VALUES ($1,$2,$3,$4,FALSE,$5)",
    )
    .bind(&role.role_id)
    .bind(&role.name)
    .bind(role.scope.as_str())
    .bind(strings(&role.permissions))
    .bind(role.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether a role with this name exists (names are unique).
pub async fn role_name_taken(tx: &mut PgTx, name: &str) -> StoreResult<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM roles WHERE name = $1)")
        .bind(name)
        .fetch_one(&mut **tx)
        .await?)
}

pub async fn count_roles(tx: &mut PgTx) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM roles").fetch_one(&mut **tx).await?)
}

const ROLE_COLUMNS: &str = "role_id, name, scope, permissions, built_in, created_at";

pub async fn get_role_for_update(tx: &mut PgTx, id: &str) -> StoreResult<Option<Role>> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE role_id = $1 FOR UPDATE");
    let row: Option<RoleRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Role::try_from).transpose()
}

pub async fn set_role_permissions(tx: &mut PgTx, id: &str, perms: &[AdminPermission]) -> StoreResult<()> {
    sqlx::query("UPDATE roles SET permissions = $2 WHERE role_id = $1")
        .bind(id)
        .bind(strings(perms))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn list_roles(pool: &sqlx::PgPool, page: &PageSpec) -> StoreResult<Page<Role>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {ROLE_COLUMNS}, {} FROM roles WHERE TRUE", page.cursor_columns()));
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((Role::try_from(RoleRow::from_row(r)?)?, after_of(r)?)))
        .collect::<StoreResult<Vec<(Role, After)>>>()?;
    Ok(finish(rows, page.limit))
}

/// Principals holding `role`, active or not.
pub async fn holders(tx: &mut PgTx, role: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM principal_roles WHERE role_id = $1")
        .bind(role)
        .fetch_one(&mut **tx)
        .await?)
}

pub async fn delete_role(tx: &mut PgTx, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM roles WHERE role_id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Assigns a role; `false` when it was already assigned.
pub async fn assign(tx: &mut PgTx, principal: &str, role: &str, at: OffsetDateTime) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO principal_roles (principal_id, role_id, created_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
    )
    .bind(principal)
    .bind(role)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes an assignment; `false` when there was none.
pub async fn unassign(tx: &mut PgTx, principal: &str, role: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM principal_roles WHERE principal_id = $1 AND role_id = $2")
        .bind(principal)
        .bind(role)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Active principals holding `role`. Callers lock the role's row first, so two removals
/// cannot both see the other owner.
pub async fn active_holders(tx: &mut PgTx, role: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM principal_roles r JOIN principals p ON p.principal_id = r.principal_id \
         WHERE r.role_id = $1 AND p.status = 'ACTIVE'",
    )
    .bind(role)
    .fetch_one(&mut **tx)
    .await?)
}

#[derive(FromRow)]
struct PatRow {
    key_id: String,
    principal_id: String,
    name: String,
    key_prefix: String,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
}

impl From<PatRow> for Pat {
    fn from(r: PatRow) -> Self {
        Pat {
            key_id: r.key_id,
            principal_id: r.principal_id,
            name: r.name,
            key_prefix: r.key_prefix,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

const PAT_COLUMNS: &str = "key_id, principal_id, name, key_prefix, created_at, expires_at, revoked_at, last_used_at";

pub async fn insert_token(tx: &mut PgTx, pat: &Pat, digest: &[u8]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO principal_tokens (key_id, principal_id, name, key_prefix, key_digest, created_at, expires_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&pat.key_id)
    .bind(&pat.principal_id)
    .bind(&pat.name)
    .bind(&pat.key_prefix)
    .bind(digest)
    .bind(pat.created_at)
    .bind(pat.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A principal's token, locked; with its digest (for the cache announcement).
pub async fn get_token_for_update(tx: &mut PgTx, principal: &str, key_id: &str) -> StoreResult<Option<(Pat, Vec<u8>)>> {
    let sql = format!(
        "SELECT {PAT_COLUMNS}, key_digest FROM principal_tokens WHERE key_id = $1 AND principal_id = $2 FOR UPDATE"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key_id).bind(principal).fetch_optional(&mut **tx).await?;
    row.map(|row| {
        use sqlx::Row as _;
        let digest: Vec<u8> = row.try_get("key_digest")?;
        Ok((Pat::from(PatRow::from_row(&row)?), digest))
    })
    .transpose()
}

pub async fn revoke_token(tx: &mut PgTx, key_id: &str, at: OffsetDateTime) -> StoreResult<()> {
    sqlx::query("UPDATE principal_tokens SET revoked_at = $2 WHERE key_id = $1")
        .bind(key_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What the admin authenticator caches for a token: the token, its principal, and the roles
/// the principal holds (built-in ones with their code-defined permissions).
pub struct TokenGrant {
    pub pat: Pat,
    pub principal: Principal,
    pub roles: Vec<Role>,
}

pub async fn find_token(pool: &sqlx::PgPool, digest: &[u8]) -> StoreResult<Option<TokenGrant>> {
    let sql = format!("SELECT {PAT_COLUMNS} FROM principal_tokens WHERE key_digest = $1");
    let Some(row): Option<PatRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(digest).fetch_optional(pool).await?
    else {
        return Ok(None);
    };
    let pat = Pat::from(row);
    let Some(principal) = get_principal(pool, &pat.principal_id).await? else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE role_id IN \
         (SELECT role_id FROM principal_roles WHERE principal_id = $1) ORDER BY role_id"
    );
    let roles: Vec<RoleRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&principal.principal_id).fetch_all(pool).await?;
    let roles = roles.into_iter().map(Role::try_from).collect::<StoreResult<_>>()?;
    Ok(Some(TokenGrant { pat, principal, roles }))
}

/// Records a use of a token (at most once per cache fill, so not on every request).
pub async fn touch_token(pool: &sqlx::PgPool, key_id: &str, at: OffsetDateTime) -> StoreResult<()> {
    sqlx::query("UPDATE principal_tokens SET last_used_at = $2 WHERE key_id = $1")
        .bind(key_id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// The kinds of admin resource whose owning tenant the access check looks up by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    ApiKey,
    Webhook,
    Event,
    Policy,
    Principal,
}

/// The tenant owning a resource (`Some(None)`: a platform-wide one); `None` if it does not exist.
pub async fn owner_tenant(pool: &sqlx::PgPool, kind: Owned, id: &str) -> StoreResult<Option<Option<String>>> {
    let sql = match kind {
        Owned::ApiKey => "SELECT tenant_id FROM api_keys WHERE key_id = $1",
        Owned::Webhook => "SELECT tenant_id FROM webhook_subscriptions WHERE subscription_id = $1",
        Owned::Event => "SELECT tenant_id FROM events WHERE event_id = $1",
        Owned::Principal => "SELECT tenant_id FROM principals WHERE principal_id = $1",
        Owned::Policy => "SELECT tenant_id FROM policies WHERE policy_id = $1",
    };
    Ok(sqlx::query_scalar(sql).bind(id).fetch_optional(pool).await?)
}
