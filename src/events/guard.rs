//! The webhook SSRF guard: the security config (`WebhookSecurityConfig`), URL checks on
//! create and update, and a DNS resolver for deliveries that refuses any blocked address at
//! connect time, so a hostname that re-resolves to a private address is still refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wildmatch::WildMatch;

/// The spec's default blocked ranges.
pub const DEFAULT_BLOCKED: [&str; 7] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "::1/128", "fc00::/7"];
/// How long a create or update waits for the URL's host to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Upper bounds on the config lists, so a config stays small and cheap to check.
const LIST_LEN_MAX: usize = 100;

/// `WebhookSecurityConfig` on the wire; omitted fields take the spec's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookSecurityConfig)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    #[serde(default = "default_blocked")]
    pub blocked_cidr_ranges: Vec<String>,
    #[serde(default)]
    pub allowed_url_patterns: Vec<String>,
    #[serde(default)]
    pub allow_http: bool,
}

fn default_blocked() -> Vec<String> {
    DEFAULT_BLOCKED.iter().map(|s| (*s).to_string()).collect()
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self { blocked_cidr_ranges: default_blocked(), allowed_url_patterns: Vec::new(), allow_http: false }
    }
}

/// A validated config, ready to check URLs and addresses against.
#[derive(Debug, Clone)]
pub struct Guard {
    pub config: SecurityConfig,
    blocked: Vec<IpNet>,
    patterns: Vec<WildMatch>,
}

impl Guard {
    /// Validates `config`; the error names the offending field and value.
    pub fn new(config: SecurityConfig) -> Result<Self, (String, String)> {
        if config.blocked_cidr_ranges.len() > LIST_LEN_MAX || config.allowed_url_patterns.len() > LIST_LEN_MAX {
            return Err(("blocked_cidr_ranges".into(), format!("at most {LIST_LEN_MAX} entries per list")));
        }
        let blocked = config
            .blocked_cidr_ranges
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .map_err(|_| ("blocked_cidr_ranges".to_string(), format!("{c:?} is not a CIDR range")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(p) = config.allowed_url_patterns.iter().find(|p| p.is_empty() || p.len() > 2048) {
            return Err(("allowed_url_patterns".into(), format!("{p:?} must be 1 to 2048 characters")));
        }
        // No URL holds U+0000 (it is refused in `check_url_syntax`), and the config is stored
        // as PostgreSQL jsonb, which cannot hold it.
        if let Some(p) = config.allowed_url_patterns.iter().find(|p| p.contains('\0')) {
            return Err(("allowed_url_patterns".into(), format!("{p:?} must not contain NUL characters")));
        }
        let patterns = config.allowed_url_patterns.iter().map(|p| WildMatch::new(p)).collect();
        Ok(Self { config, blocked, patterns })
    }

    /// Whether deliveries may not go to `ip`: a blocked range, or an address that is never
    /// a public endpoint (unspecified, multicast, broadcast). IPv4-mapped IPv6 addresses
    /// are checked as the IPv4 address they carry.
    pub fn blocks(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
            return true;
        }
        self.blocked.iter().any(|net| net.contains(&ip))
    }

    /// Checks a subscription URL: syntax, scheme, the allow-list patterns, and the addresses
    /// its host resolves to now. The error is the message for `url`.
    pub async fn check_url(&self, raw: &str) -> Result<reqwest::Url, String> {
        let url = self.check_url_syntax(raw)?;
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| format!("host {host} did not resolve within {} s", RESOLVE_TIMEOUT.as_secs()))?
                .map_err(|_| format!("host {host} does not resolve"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("host {host} does not resolve"));
        }
        if let Some(a) = addrs.iter().find(|a| self.blocks(a.ip())) {
            return Err(format!("host {host} resolves to {}, which is in a blocked address range", a.ip()));
        }
        Ok(url)
    }

    /// The checks that need no network: syntax, scheme, patterns, an IP-literal host.
    pub fn check_url_syntax(&self, raw: &str) -> Result<reqwest::Url, String> {
        if raw.is_empty() || raw.len() > 2048 {
            return Err("must be 1 to 2048 characters".into());
        }
        if raw.contains('\0') {
            return Err("must not contain NUL characters".into());
        }
        let url = reqwest::Url::parse(raw).map_err(|e| format!("is not a valid URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.config.allow_http => {}
            "http" => return Err("must use https (allow_http is off in the webhook security config)".into()),
            other => return Err(format!("scheme {other} is not supported; use https")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials; use custom headers".into());
        }
        if !self.patterns.is_empty() && !self.patterns.iter().any(|p| p.matches(raw)) {
            return Err("matches none of the allowed_url_patterns of the webhook security config".into());
        }
        if let Ok(ip) =
            url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
            && self.blocks(ip)
        {
            return Err(format!("address {ip} is in a blocked address range"));
        }
        Ok(url)
    }
}

impl Default for Guard {
    /// The spec's defaults (a unit test checks that every default range parses).
    fn default() -> Self {
        let config = SecurityConfig::default();
        let blocked = DEFAULT_BLOCKED.iter().filter_map(|c| c.parse().ok()).collect();
        Self { config, blocked, patterns: Vec::new() }
    }
}

/// The current guard, shared by the admin handlers and the dispatcher's resolver.
/// It remembers when the config it holds was written, so a refresh that read the store
/// before a newer PUT committed cannot put the older config back.
#[derive(Debug, Clone, Default)]
pub struct SharedGuard(Arc<RwLock<Slot>>);

#[derive(Debug, Default)]
struct Slot {
    guard: Arc<Guard>,
    /// When the held config was written; `None` for the defaults nobody stored.
    written_at: Option<OffsetDateTime>,
}

impl SharedGuard {
    pub fn current(&self) -> Arc<Guard> {
        match self.0.read() {
            Ok(slot) => slot.guard.clone(),
            Err(poisoned) => poisoned.into_inner().guard.clone(),
        }
    }

    /// Holds `guard` unless the config held now was written later than it.
    pub fn replace(&self, guard: Guard, written_at: OffsetDateTime) {
        let mut slot = match self.0.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.written_at.is_none_or(|held| held <= written_at) {
            *slot = Slot { guard: Arc::new(guard), written_at: Some(written_at) };
        }
    }
}

/// Resolves delivery hosts and refuses the connection when any address is blocked.
pub struct GuardedResolver(pub SharedGuard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.current();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(a) = addrs.iter().find(|a| guard.blocks(a.ip())) {
                return Err(format!("{host} resolves to {}, which is in a blocked address range", a.ip()).into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_blocks_private_loopback_and_mapped_addresses() {
        let g = Guard::new(SecurityConfig::default()).unwrap();
        assert_eq!(g.blocked.len(), DEFAULT_BLOCKED.len());
        assert_eq!(Guard::default().blocked, g.blocked);
        for ip in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "169.254.169.254"] {
            assert!(g.blocks(ip.parse().unwrap()), "{ip}");
        }
        assert!(!g.blocks("93.184.216.34".parse().unwrap()));
        assert!(g.check_url_syntax("http://example.com/hook").is_err());
        assert!(g.check_url_syntax("https://127.0.0.1/hook").is_err());
        assert!(g.check_url_syntax("https://example.com/hook").is_ok());
    }

    #[test]
    fn a_config_read_before_a_newer_write_does_not_replace_it() {
        let shared = SharedGuard::default();
        let newer = SecurityConfig { allow_http: true, ..Default::default() };
        let t0 = OffsetDateTime::UNIX_EPOCH;
        shared.replace(Guard::new(newer).unwrap(), t0 + time::Duration::seconds(2));
        shared.replace(Guard::new(SecurityConfig::default()).unwrap(), t0 + time::Duration::seconds(1));
        assert!(shared.current().config.allow_http);
    }

    #[test]
    fn allowed_patterns_restrict_urls_when_present() {
        let config =
            SecurityConfig { allowed_url_patterns: vec!["https://*.example.com/*".into()], ..Default::default() };
        let g = Guard::new(config).unwrap();
        assert!(g.check_url_syntax("https://hooks.example.com/x").is_ok());
        assert!(g.check_url_syntax("https://example.org/x").is_err());
    }
}
