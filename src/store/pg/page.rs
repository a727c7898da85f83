//! Keyset pagination shared by every catalogue list: rows ordered by a sort expression with
//! the primary id as tie-break, resumed strictly after the last row of the previous page.

use sqlx::{Postgres, QueryBuilder};

/// One sortable column: the SQL expression, the type its cursor text casts back to, and the
/// tie-break id expression with its type.
#[derive(Debug, Clone, Copy)]
pub struct SortColumn {
    pub expr: &'static str,
    pub cast: &'static str,
    pub id_expr: &'static str,
    pub id_cast: &'static str,
}

/// Where a page starts: after the row whose sort value and id are given.
#[derive(Debug, Clone)]
pub struct After {
    pub value: String,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct PageSpec {
    pub column: SortColumn,
    pub descending: bool,
    pub after: Option<After>,
    pub limit: u32,
}

impl PageSpec {
    /// Appends ` AND (expr, id) > (cursor)` (or `<` when descending) to a WHERE clause.
    pub fn push_after(&self, qb: &mut QueryBuilder<Postgres>) {
        if let Some(after) = &self.after {
            let op = if self.descending { "<" } else { ">" };
            qb.push(format!(" AND ({}, {}) {op} (", self.column.expr, self.column.id_expr));
            qb.push_bind(after.value.clone());
            qb.push(format!("::{}, ", self.column.cast));
            qb.push_bind(after.id.clone());
            qb.push(format!("::{})", self.column.id_cast));
        }
    }

    /// Appends ORDER BY and a LIMIT one larger than the page, to learn whether more follow.
    pub fn push_order_limit(&self, qb: &mut QueryBuilder<Postgres>) {
        let dir = if self.descending { "DESC" } else { "ASC" };
        qb.push(format!(
            " ORDER BY {} {dir}, {} {dir} LIMIT {}",
            self.column.expr,
            self.column.id_expr,
            i64::from(self.limit) + 1
        ));
    }

    /// The select-list item that yields each row's cursor values.
    pub fn cursor_columns(&self) -> String {
        format!("({})::text AS cursor_value, ({})::text AS cursor_id", self.column.expr, self.column.id_expr)
    }
}

/// A page of rows and, when more follow, the position after its last row.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<After>,
}

/// Trims the extra row fetched by `push_order_limit` and records where the next page starts.
pub fn finish<T>(mut rows: Vec<(T, After)>, limit: u32) -> Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if has_more { rows.last().map(|(_, after)| after.clone()) } else { None };
    Page { items: rows.into_iter().map(|(item, _)| item).collect(), next }
}

/// Reads the cursor columns that `PageSpec::cursor_columns` added to a row.
pub fn after_of(row: &sqlx::postgres::PgRow) -> Result<After, sqlx::Error> {
    use sqlx::Row as _;
    Ok(After { value: row.try_get("cursor_value")?, id: row.try_get("cursor_id")? })
}
