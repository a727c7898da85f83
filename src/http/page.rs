//! List plumbing every list endpoint of both planes shares: the `limit`, `sort_by`/`sort_dir`
//! and `cursor` parameters, one cursor format, and one in-memory pager for the lists read from
//! the ledger (catalogue lists page in SQL through [`sql`]). Also the filter parameters every
//! list treats alike: `search`, NUL checks, enum values.
//!
//! A cursor is opaque and URL-safe: base64url of a small JSON object holding the sort it was
//! issued for (`by:dir`), a fingerprint of the list's filters, and the sort key and id of the
//! last row served. A cursor from another sort or another set of filters is a 400
//! `INVALID_REQUEST` naming `cursor`, never a silently wrong page. Must not know a route.

use std::fmt::Debug;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::store::pg::page::{self as pg_page, After, PageSpec, SortColumn};

/// Page sizes one list accepts: `limit` absent means `default`; above `max` is a 400.
#[derive(Debug, Clone, Copy)]
pub struct PageSize {
    pub default: usize,
    pub max: usize,
}

/// The admin lists (admin spec: 1..100, default 50).
pub const ADMIN: PageSize = PageSize { default: 50, max: 100 };
/// The runtime lists (protocol spec: 1..200, default 50).
pub const RUNTIME: PageSize = PageSize { default: 50, max: 200 };
/// `search` longer than this is refused (the spec's 128).
pub const SEARCH_LEN_MAX: usize = 128;
/// A cursor longer than this cannot be one we issued (ours hold two short values and a
/// sort key), so it is refused before decoding.
const CURSOR_LEN_MAX: usize = 2048;

/// Query parameters every list shares (`#[serde(flatten)]` them into a list's query).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    pub sort_by: Option<String>,
    pub sort_dir: Option<String>,
    pub cursor: Option<String>,
    /// Page size (the list's bounds apply; a value outside them is a 400).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub limit: Option<String>,
}

/// A blank parameter is an absent one.
fn given(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|s| !s.is_empty())
}

/// `limit`: absent or blank is the list's default; anything but 1..=max is a 400.
pub fn limit(raw: Option<&str>, size: PageSize) -> ApiResult<usize> {
    match given(raw) {
        None => Ok(size.default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=size.max).contains(n))
            .ok_or_else(|| ApiError::invalid_field("limit", format!("must be an integer from 1 to {}", size.max))),
    }
}

/// A list's order: one of its sortable columns, then the row id, in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub by: String,
    pub descending: bool,
}

impl Sort {
    /// `sort_by` among `allowed` (absent: `default`), `sort_dir` asc|desc (absent: desc).
    pub fn parse(sort_by: Option<&str>, sort_dir: Option<&str>, allowed: &[&str], default: &str) -> ApiResult<Self> {
        let by = given(sort_by).unwrap_or(default);
        if !allowed.contains(&by) {
            return Err(ApiError::invalid_field("sort_by", format!("must be one of {}", allowed.join(", "))));
        }
        let descending = match given(sort_dir) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(ApiError::invalid_field("sort_dir", "must be asc or desc")),
        };
        Ok(Self { by: by.to_string(), descending })
    }

    /// A fixed order for a list that offers no choice.
    pub fn ascending(by: &str) -> Self {
        Self { by: by.to_string(), descending: false }
    }

    fn name(&self) -> String {
        format!("{}:{}", self.by, if self.descending { "desc" } else { "asc" })
    }
}

/// Where a page resumes: strictly after the row with this sort key and id. Ordered like the
/// rows: by key, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub key: String,
    pub id: String,
}

/// The cursor's JSON; short names keep the token short.
#[derive(Serialize, Deserialize)]
struct Token {
    s: String,
    f: String,
    k: String,
    i: String,
}

/// One request's paging: its order, page size, where it resumes, and the fingerprint of the
/// filters its cursors belong to.
#[derive(Debug, Clone)]
pub struct Paging {
    pub sort: Sort,
    pub limit: usize,
    pub after: Option<Position>,
    filters: String,
}

/// One page of rows; `next_cursor` is set exactly when `has_more` is.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// A short digest of a list's (validated, normalized) filters.
fn fingerprint(filters: &impl Debug) -> String {
    hex::encode(&Sha256::digest(format!("{filters:?}").as_bytes())[..12])
}

/// The 400 for a cursor this list did not issue.
pub fn invalid_cursor() -> ApiError {
    ApiError::invalid_field("cursor", "is not valid for this result set; restart pagination without a cursor")
}

impl Paging {
    /// Checks `cursor` (blank: first page) against `sort` and `filters`.
    pub fn new(sort: Sort, limit: usize, cursor: Option<&str>, filters: &impl Debug) -> ApiResult<Self> {
        let filters = fingerprint(filters);
        let after = match given(cursor) {
            None => None,
            Some(raw) => {
                if raw.len() > CURSOR_LEN_MAX {
                    return Err(invalid_cursor());
                }
                let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid_cursor())?;
                let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid_cursor())?;
                if token.s != sort.name() || token.f != filters {
                    return Err(invalid_cursor());
                }
                Some(Position { key: token.k, id: token.i })
            }
        };
        Ok(Self { sort, limit, after, filters })
    }

    /// The cursor of the page that follows the row at `last`.
    pub fn cursor_after(&self, last: &Position) -> String {
        let token = Token { s: self.sort.name(), f: self.filters.clone(), k: last.key.clone(), i: last.id.clone() };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
    }

    /// Whether a row at `p` comes after the cursor in this order (every row does on a first page).
    pub fn is_after_cursor(&self, p: &Position) -> bool {
        match &self.after {
            None => true,
            Some(after) if self.sort.descending => p < after,
            Some(after) => p > after,
        }
    }

    /// Pages rows read whole: sorts them by `position` (key, then id) in this order, skips to
    /// the cursor, and keeps one page.
    pub fn page<T>(&self, rows: Vec<T>, position: impl Fn(&T) -> Position) -> Page<T> {
        let mut keyed: Vec<(Position, T)> =
            rows.into_iter().map(|r| (position(&r), r)).filter(|(p, _)| self.is_after_cursor(p)).collect();
        keyed.sort_by(|a, b| if self.sort.descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
        self.page_ordered(keyed, None)
    }

    /// A page from rows already in this order and after the cursor. More than `limit` rows
    /// means more follow the page; `resume`, when a bounded scan stopped before the end, is
    /// the last position it examined, so the next page continues from there.
    pub fn page_ordered<T>(&self, mut rows: Vec<(Position, T)>, resume: Option<Position>) -> Page<T> {
        let next = if rows.len() > self.limit {
            rows.truncate(self.limit);
            rows.last().map(|(p, _)| p.clone())
        } else {
            resume
        };
        let next_cursor = next.map(|p| self.cursor_after(&p));
        Page { items: rows.into_iter().map(|(_, r)| r).collect(), has_more: next_cursor.is_some(), next_cursor }
    }

    /// A page the store read in SQL, with its cursor.
    pub fn finish<T>(&self, page: pg_page::Page<T>) -> Page<T> {
        let next_cursor = page.next.map(|n| self.cursor_after(&Position { key: n.value, id: n.id }));
        Page { items: page.items, has_more: next_cursor.is_some(), next_cursor }
    }
}

/// The shared parameters of a list paged in memory, against its sortable columns.
pub fn parse(
    params: &ListParams,
    allowed: &[&str],
    default_sort: &str,
    size: PageSize,
    filters: &impl Debug,
) -> ApiResult<Paging> {
    let sort = Sort::parse(params.sort_by.as_deref(), params.sort_dir.as_deref(), allowed, default_sort)?;
    let limit = limit(params.limit.as_deref(), size)?;
    Paging::new(sort, limit, params.cursor.as_deref(), filters)
}

/// The shared parameters of an admin list paged in SQL: the paging, and the store's keyset
/// spec for the chosen column.
pub fn sql(
    params: &ListParams,
    columns: &[(&str, SortColumn)],
    default_sort: &str,
    filters: &impl Debug,
) -> ApiResult<(PageSpec, Paging)> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let paging = parse(params, &names, default_sort, ADMIN, filters)?;
    let column = columns.iter().find(|(name, _)| *name == paging.sort.by).map(|(_, c)| *c).ok_or_else(|| {
        // `parse` accepted the name from this very list, so the column exists.
        ApiError::internal("sort column vanished")
    })?;
    let after = paging.after.as_ref().map(|p| After { value: p.key.clone(), id: p.id.clone() });
    let limit = u32::try_from(paging.limit).unwrap_or(u32::MAX);
    Ok((PageSpec { column, descending: paging.sort.descending, after, limit }, paging))
}

/// `search`: empty means absent; longer than [`SEARCH_LEN_MAX`] is a 400.
pub fn search_param(raw: Option<&str>) -> ApiResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() > SEARCH_LEN_MAX => {
            Err(ApiError::invalid_field("search", format!("must be at most {SEARCH_LEN_MAX} characters")))
        }
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// PostgreSQL text cannot hold U+0000, so no stored value contains it: a filter or field that
/// does is refused, naming itself, rather than sent to the store.
pub fn no_nul<'a>(name: &str, raw: Option<&'a str>) -> ApiResult<Option<&'a str>> {
    match raw {
        Some(s) if s.contains('\0') => Err(ApiError::invalid_field(name, "must not contain NUL characters")),
        other => Ok(other),
    }
}

/// Parses an enum-valued query parameter, naming it when the value is unknown.
pub fn enum_param<T>(
    name: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    allowed: &[&str],
) -> ApiResult<Option<T>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field(name, format!("must be one of {}", allowed.join(", ")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(cursor: Option<&str>, filters: &str) -> ApiResult<Paging> {
        Paging::new(Sort::ascending("n"), 2, cursor, &filters)
    }

    #[test]
    fn pages_in_memory_cover_every_row_once() {
        let rows: Vec<u32> = vec![5, 3, 9, 1, 7];
        let position = |r: &u32| Position { key: format!("{r:04}"), id: r.to_string() };
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let p = paging(cursor.as_deref(), "f").unwrap();
            let page = p.page(rows.clone(), position);
            assert_eq!(page.has_more, page.next_cursor.is_some());
            seen.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, vec![1, 3, 5, 7, 9]);
    }

    #[test]
    fn a_cursor_from_other_filters_or_another_sort_is_refused() {
        let p = paging(None, "f").unwrap();
        let c = p.cursor_after(&Position { key: "k".into(), id: "i".into() });
        assert!(paging(Some(&c), "f").is_ok());
        assert_eq!(paging(Some(&c), "g").unwrap_err().code, crate::error::ErrorCode::InvalidRequest);
        let desc = Sort { by: "n".into(), descending: true };
        assert!(Paging::new(desc, 2, Some(&c), &"f").is_err());
        assert!(paging(Some("%%%"), "f").is_err());
    }

    #[test]
    fn a_scan_that_stopped_early_still_offers_a_cursor() {
        let p = paging(None, "f").unwrap();
        let at = |k: &str| Position { key: k.into(), id: k.into() };
        let page = p.page_ordered(vec![(at("a"), 1)], Some(at("z")));
        assert_eq!((page.items, page.has_more), (vec![1], true));
        let resumed = paging(page.next_cursor.as_deref(), "f").unwrap();
        assert_eq!(resumed.after, Some(at("z")));
        let last = p.page_ordered(vec![(at("a"), 1)], None);
        assert_eq!((last.has_more, last.next_cursor), (false, None));
    }

    #[test]
    fn limits_are_checked_against_the_list_page_size() {
        assert_eq!(limit(None, ADMIN).unwrap(), 50);
        assert_eq!(limit(Some(" "), RUNTIME).unwrap(), 50);
        assert!(limit(Some("101"), ADMIN).is_err());
        assert_eq!(limit(Some("200"), RUNTIME).unwrap(), 200);
        assert!(limit(Some("0"), RUNTIME).is_err());
    }
}
