//! Subjects and scopes. A subject names up to six levels (tenant → workspace → app →
//! workflow → agent → toolset); its scopes are the cumulative prefixes of the levels it
//! names, in that canonical order, gaps skipped, values lowercased (DESIGN.md).

/// The canonical levels, outermost first.
pub const LEVELS: [&str; 6] = ["tenant", "workspace", "app", "workflow", "agent", "toolset"];
/// Longest value of one level (the spec's `Subject` fields).
pub const LEVEL_VALUE_LEN_MAX: usize = 128;

/// Checks one level value: 1..128 characters of `[A-Za-z0-9_.-]`.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > LEVEL_VALUE_LEN_MAX {
        return Err(format!("must be 1 to {LEVEL_VALUE_LEN_MAX} characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err("must match ^[a-zA-Z0-9_.-]+$".into());
    }
    Ok(())
}

/// The scopes a subject touches: every cumulative prefix, canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    pub affected: Vec<String>,
}

impl Scopes {
    /// `levels[i]` is the value of `LEVELS[i]`, if named. Values must already be checked.
    pub fn derive(levels: &[Option<&str>; 6]) -> Scopes {
        let mut path = String::new();
        let mut affected = Vec::new();
        for (name, value) in LEVELS.iter().zip(levels) {
            if let Some(v) = value {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(name);
                path.push(':');
                path.push_str(&v.to_ascii_lowercase());
                affected.push(path.clone());
            }
        }
        Scopes { affected }
    }

    /// The deepest scope.
    pub fn path(&self) -> &str {
        self.affected.last().map(String::as_str).unwrap_or_default()
    }
}

/// Parses a budget scope such as `tenant:acme/workspace:eng`: it starts at the tenant level,
/// levels appear in canonical order (gaps allowed) at most once, values are lowercased.
pub fn parse_budget_scope(raw: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let mut last_level: Option<usize> = None;
    for segment in raw.split('/') {
        let (level, value) = segment.split_once(':').ok_or("each segment must be level:value")?;
        let index = LEVELS.iter().position(|l| *l == level).ok_or_else(|| format!("unknown level {level:?}"))?;
        if last_level.is_none() && index != 0 {
            return Err("must start with tenant:<id>".into());
        }
        if last_level.is_some_and(|last| index <= last) {
            return Err("levels must follow tenant, workspace, app, workflow, agent, toolset order, once each".into());
        }
        check_value(value).map_err(|e| format!("{level}: {e}"))?;
        out.push(format!("{level}:{}", value.to_ascii_lowercase()));
        last_level = Some(index);
    }
    Ok(out.join("/"))
}

/// The tenant a budget scope belongs to (its first segment's value).
pub fn scope_tenant(scope: &str) -> &str {
    scope.split('/').next().and_then(|s| s.strip_prefix("tenant:")).unwrap_or_default()
}

/// Whether an API key's `scope_filter` lets it see `scope`: no filter allows everything;
/// otherwise some entry must match a segment exactly, or as `kind:*` any value of that kind.
pub fn filter_allows(filter: &[String], scope: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    filter.iter().any(|entry| {
        scope.split('/').any(|segment| match entry.strip_suffix('*') {
            Some(kind_colon) if kind_colon.ends_with(':') => segment.starts_with(kind_colon),
            _ => segment.eq_ignore_ascii_case(entry),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_skipped_and_prefixes_are_cumulative() {
        let s = Scopes::derive(&[Some("Acme"), None, None, None, Some("bot"), None]);
        assert_eq!(s.affected, vec!["tenant:acme", "tenant:acme/agent:bot"]);
        assert_eq!(s.path(), "tenant:acme/agent:bot");
    }

    #[test]
    fn budget_scopes_follow_the_canonical_order() {
        assert_eq!(parse_budget_scope("tenant:Acme/agent:Bot").unwrap(), "tenant:acme/agent:bot");
        assert!(parse_budget_scope("workspace:eng").is_err());
        assert!(parse_budget_scope("tenant:a/agent:b/workspace:c").is_err());
        assert!(parse_budget_scope("tenant:a/tenant:b").is_err());
        assert!(parse_budget_scope("tenant:a b").is_err());
        assert!(parse_budget_scope("tenant:").is_err());
    }

    #[test]
    fn scope_filters_match_segments_or_kinds() {
        let f = vec!["workspace:eng".to_string(), "agent:*".to_string()];
        assert!(filter_allows(&f, "tenant:a/workspace:eng"));
        assert!(filter_allows(&f, "tenant:a/agent:x"));
        assert!(!filter_allows(&f, "tenant:a/workspace:ops"));
        assert!(filter_allows(&[], "tenant:a"));
    }
}
