//! List plumbing shared by the admin lists: `limit`, `sort_by`/`sort_dir`, and opaque
//! cursors that encode the sort they belong to (a cursor from another sort is a 400).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::store::pg::page::{After, PageSpec, SortColumn};

/// Page size when `limit` is absent, and the largest page served.
pub const LIMIT_DEFAULT: u32 = 50;
pub const LIMIT_MAX: u32 = 100;
/// `search` longer than this is refused (the spec's 128).
pub const SEARCH_LEN_MAX: usize = 128;
/// A cursor longer than this cannot be one we issued.
const CURSOR_LEN_MAX: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    d: String,
    v: String,
    i: String,
}

/// Query parameters every list shares.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub sort_by: Option<String>,
    pub sort_dir: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

/// Resolves the shared parameters against one list's sortable columns.
pub fn page_spec(
    params: &ListParams,
    columns: &[(&str, SortColumn)],
    default_sort: &str,
) -> ApiResult<(PageSpec, String)> {
    let sort_by = params.sort_by.as_deref().filter(|s| !s.is_empty()).unwrap_or(default_sort);
    let column = columns.iter().find(|(name, _)| *name == sort_by).map(|(_, c)| *c).ok_or_else(|| {
        let allowed: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        ApiError::invalid_field("sort_by", format!("must be one of {}", allowed.join(", ")))
    })?;
    let dir = match params.sort_dir.as_deref().filter(|s| !s.is_empty()) {
        None | Some("desc") => "desc",
        Some("asc") => "asc",
        Some(_) => return Err(ApiError::invalid_field("sort_dir", "must be asc or desc")),
    };
    let limit = match params.limit.as_deref().filter(|s| !s.is_empty()) {
        None => LIMIT_DEFAULT,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=LIMIT_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_field("limit", format!("must be an integer from 1 to {LIMIT_MAX}")));
            }
        },
    };
    let after = match params.cursor.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(decode_cursor(raw, sort_by, dir)?),
    };
    let spec = PageSpec { column, descending: dir == "desc", after, limit };
    Ok((spec, format!("{sort_by}:{dir}")))
}

fn decode_cursor(raw: &str, sort_by: &str, dir: &str) -> ApiResult<After> {
    let invalid =
        || ApiError::invalid_field("cursor", "is not valid for this result set; restart pagination without a cursor");
    if raw.len() > CURSOR_LEN_MAX {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if c.s != sort_by || c.d != dir {
        return Err(invalid());
    }
    Ok(After { value: c.v, id: c.i })
}

/// The cursor for the page after `next`, for the sort named by `sort_key` (`by:dir`).
pub fn encode_cursor(sort_key: &str, next: &After) -> String {
    let (s, d) = sort_key.split_once(':').unwrap_or((sort_key, "desc"));
    let c = Cursor { s: s.into(), d: d.into(), v: next.value.clone(), i: next.id.clone() };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
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
