//! Key material: minting tenant API keys, their keyed digests, and constant-time admin-key
//! comparison. The only module that sees a key secret; secrets are never logged.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `cyc_live_` + 32 base62 characters (~190 bits), the spec's key format.
pub const KEY_SECRET_PREFIX: &str = "cyc_live_";
const KEY_RANDOM_LEN: usize = 32;
/// Random characters kept in the displayable `key_prefix` (`cyc_live_abc123`).
const KEY_PREFIX_RANDOM_LEN: usize = 6;
/// Longest string accepted as a key secret; anything longer cannot be one of ours.
pub const KEY_SECRET_LEN_MAX: usize = 128;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly minted key: the secret (shown once) and its displayable prefix.
pub struct MintedKey {
    pub secret: String,
    pub prefix: String,
}

/// Fills `n` base62 characters from the OS CSPRNG, rejecting bytes ≥ 248 to stay unbiased.
pub fn random_base62(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    let mut buf = [0_u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)?;
        for b in buf {
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

pub fn mint_key() -> Result<MintedKey, getrandom::Error> {
    let random = random_base62(KEY_RANDOM_LEN)?;
    Ok(MintedKey {
        prefix: format!("{KEY_SECRET_PREFIX}{}", &random[..KEY_PREFIX_RANDOM_LEN]),
        secret: format!("{KEY_SECRET_PREFIX}{random}"),
    })
}

/// Personal access tokens of admin principals: `tg_pat_` + 40 base62 characters (~238 bits),
/// recognisable in a leaked log and never confused with a tenant key.
pub const PAT_PREFIX: &str = "tg_pat_";
const PAT_RANDOM_LEN: usize = 40;

pub fn mint_pat() -> Result<MintedKey, getrandom::Error> {
    let random = random_base62(PAT_RANDOM_LEN)?;
    Ok(MintedKey {
        prefix: format!("{PAT_PREFIX}{}", &random[..KEY_PREFIX_RANDOM_LEN]),
        secret: format!("{PAT_PREFIX}{random}"),
    })
}

/// 32 random bytes, e.g. a server secret generated at first start.
pub fn random_bytes_32() -> Result<[u8; 32], getrandom::Error> {
    let mut out = [0_u8; 32];
    getrandom::fill(&mut out)?;
    Ok(out)
}

/// HMAC-SHA256 under one secret. Keyed with the server secret it gives the digest under
/// which an API key is stored and looked up (a copy of the database alone cannot confirm a
/// guessed key) and the key that seals webhook secrets; keyed with a subscription's signing
/// secret it signs webhook deliveries.
#[derive(Clone)]
pub struct KeyHasher {
    mac: Hmac<Sha256>,
}

pub type KeyDigest = [u8; 32];

impl KeyHasher {
    pub fn new(server_secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(server_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self { mac }
    }

    /// HMAC-SHA256 of `input` under the secret this hasher was made with.
    pub fn digest(&self, input: impl AsRef<[u8]>) -> KeyDigest {
        let mut mac = self.mac.clone();
        mac.update(input.as_ref());
        mac.finalize().into_bytes().into()
    }
}

/// The configured admin key, kept only as a SHA-256 so comparisons take constant time
/// whatever the presented key's length.
#[derive(Clone)]
pub struct AdminKey {
    digest: [u8; 32],
}

impl AdminKey {
    pub fn new(key: &str) -> Self {
        Self { digest: Sha256::digest(key.as_bytes()).into() }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&presented).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_have_the_spec_format() {
        let k = mint_key().unwrap();
        assert!(k.secret.starts_with("cyc_live_"));
        assert_eq!(k.secret.len(), KEY_SECRET_PREFIX.len() + KEY_RANDOM_LEN);
        assert!(k.secret.starts_with(&k.prefix));
    }

    #[test]
    fn admin_key_matches_only_itself() {
        let a = AdminKey::new("s3cret");
        assert!(a.matches("s3cret"));
        assert!(!a.matches("s3cre"));
        assert!(!a.matches(""));
    }

    #[test]
    fn digests_depend_on_the_server_secret() {
        assert_ne!(KeyHasher::new(b"one").digest("k"), KeyHasher::new(b"two").digest("k"));
    }
}
