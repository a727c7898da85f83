//! `scope_pattern`: which scopes a policy governs. The spec's examples fix the syntax:
//! `tenant:acme` (exactly that scope), `tenant:acme/*` (its descendants), `agent:*` (every
//! agent), `*/agent:summarizer` (that agent under any parent).
//!
//! A pattern is `/`-separated segments, each `level:value` (a canonical level, a value as in a
//! subject, compared lowercased), `level:*` (any value of that level), or `*` as the first or
//! the last segment (one or more segments of any kind). Levels appear in canonical order, at
//! most once. A pattern whose first segment is not `tenant:…` or `*` floats: `agent:*` means
//! `*/agent:*`. A pattern matches a scope path when its segments cover the path exactly; it
//! matches a request when it matches one of the scopes the request touches (every cumulative
//! prefix of its subject), so `tenant:acme` governs every request of `acme` and
//! `tenant:acme/*` those that name a level below the tenant.

use crate::domain::scope::{LEVELS, check_value};

/// Longest pattern accepted (a full six-level path with 128-character values fits).
pub const PATTERN_LEN_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `level:value` (value lowercased) or `level:*` (`None`).
    Level(usize, Option<String>),
    /// `*`: one or more segments.
    Any,
}

/// A parsed, valid pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePattern {
    segs: Vec<Seg>,
}

impl ScopePattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().count() > PATTERN_LEN_MAX {
            return Err(format!("must be 1 to {PATTERN_LEN_MAX} characters"));
        }
        let parts: Vec<&str> = raw.split('/').collect();
        let mut segs = Vec::with_capacity(parts.len() + 1);
        let mut last_level: Option<usize> = None;
        for (i, part) in parts.iter().enumerate() {
            if *part == "*" {
                if i != 0 && i != parts.len() - 1 {
                    return Err("`*` may only be the first or the last segment".into());
                }
                if parts.len() == 1 {
                    return Err("must name at least one level (e.g. tenant:<id>/*)".into());
                }
                segs.push(Seg::Any);
                continue;
            }
            let (level, value) =
                part.split_once(':').ok_or_else(|| format!("segment {part:?} must be level:value, level:* or *"))?;
            let index = LEVELS
                .iter()
                .position(|l| *l == level)
                .ok_or_else(|| format!("unknown level {level:?} (levels: {})", LEVELS.join(", ")))?;
            if last_level.is_some_and(|last| index <= last) {
                return Err(
                    "levels must follow tenant, workspace, app, workflow, agent, toolset order, once each".into()
                );
            }
            last_level = Some(index);
            let value = match value {
                "*" => None,
                v => {
                    check_value(v).map_err(|e| format!("{level}: {e}"))?;
                    Some(v.to_ascii_lowercase())
                }
            };
            segs.push(Seg::Level(index, value));
        }
        if matches!(segs.first(), Some(Seg::Level(i, _)) if *i != 0) {
            segs.insert(0, Seg::Any);
        }
        Ok(Self { segs })
    }

    /// The tenant the pattern is anchored to, when its first segment names one.
    pub fn tenant(&self) -> Option<&str> {
        match self.segs.first() {
            Some(Seg::Level(0, Some(t))) => Some(t),
            _ => None,
        }
    }

    /// Whether the pattern covers `scope` (a canonical path such as `tenant:a/agent:b`).
    pub fn matches_path(&self, scope: &str) -> bool {
        self.matches_split(&SplitPath::of(scope))
    }

    /// [`ScopePattern::matches_path`] on a path split once for many patterns.
    pub fn matches_split(&self, path: &SplitPath<'_>) -> bool {
        covers(&self.segs, &path.0)
    }

    /// Whether the pattern matches one of the scopes a request touches.
    pub fn matches_any(&self, scopes: &[SplitPath<'_>]) -> bool {
        scopes.iter().any(|s| self.matches_split(s))
    }
}

/// A scope path split into its (level, value) segments, so that matching it against many
/// patterns splits it once.
pub struct SplitPath<'a>(Vec<(usize, &'a str)>);

impl<'a> SplitPath<'a> {
    pub fn of(scope: &'a str) -> Self {
        Self(
            scope
                .split('/')
                .filter_map(|s| {
                    let (level, value) = s.split_once(':')?;
                    Some((LEVELS.iter().position(|l| *l == level)?, value))
                })
                .collect(),
        )
    }

    /// Every scope of `scopes`, split.
    pub fn all(scopes: &'a [String]) -> Vec<Self> {
        scopes.iter().map(|s| Self::of(s)).collect()
    }
}

fn covers(pattern: &[Seg], path: &[(usize, &str)]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((Seg::Any, rest)), Some(_)) => (1..=path.len()).any(|n| covers(rest, &path[n..])),
        (Some((Seg::Level(level, value), rest)), Some(((l, v), tail))) => {
            level == l && value.as_deref().is_none_or(|want| want.eq_ignore_ascii_case(v)) && covers(rest, tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, scope: &str) -> bool {
        ScopePattern::parse(pattern).unwrap().matches_path(scope)
    }

    #[test]
    fn the_spec_examples_match_as_described() {
        assert!(m("tenant:acme-corp", "tenant:acme-corp"));
        assert!(!m("tenant:acme-corp", "tenant:acme-corp/agent:x"));
        assert!(m("tenant:acme-corp/*", "tenant:acme-corp/workspace:eng/agent:x"));
        assert!(!m("tenant:acme-corp/*", "tenant:acme-corp"));
        assert!(m("agent:*", "tenant:t/workspace:w/agent:bot"));
        assert!(!m("agent:*", "tenant:t/agent:bot/toolset:x"));
        assert!(m("*/agent:summarizer", "tenant:t/agent:summarizer"));
        assert!(!m("*/agent:summarizer", "tenant:t/agent:other"));
        assert!(m("tenant:acme-corp/workspace:eng/*", "tenant:acme-corp/workspace:eng/app:a"));
        assert!(m("tenant:Acme", "tenant:acme"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "*",
            "tenant:a/*/agent:b",
            "tenant:a/agent:b/workspace:c",
            "team:x",
            "tenant:a b",
            "tenant",
            "tenant:a//agent:b",
            "tenant:",
        ] {
            assert!(ScopePattern::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ScopePattern::parse(&"a".repeat(PATTERN_LEN_MAX + 1)).is_err());
    }

    #[test]
    fn a_request_matches_when_any_scope_it_touches_matches() {
        let scopes = vec!["tenant:t".to_string(), "tenant:t/agent:bot".to_string()];
        let scopes = SplitPath::all(&scopes);
        assert!(ScopePattern::parse("tenant:t").unwrap().matches_any(&scopes));
        assert!(ScopePattern::parse("tenant:t/*").unwrap().matches_any(&scopes));
        assert!(!ScopePattern::parse("workspace:*").unwrap().matches_any(&scopes));
        assert_eq!(ScopePattern::parse("tenant:T/*").unwrap().tenant(), Some("t"));
        assert_eq!(ScopePattern::parse("agent:*").unwrap().tenant(), None);
    }
}
