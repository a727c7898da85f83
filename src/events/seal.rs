//! Secrets at rest: webhook signing secrets and custom header values are sealed with
//! AES-256-GCM under a key derived from the server secret, `nonce (12 bytes) || ciphertext`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::auth::secret::KeyHasher;

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Derives the sealing key from the server secret (its keyed hash of a fixed label), so
    /// the secret that hashes API keys is never itself an encryption key.
    pub fn new(hasher: &KeyHasher) -> Self {
        let key = hasher.digest("tollgate webhook secret sealing v1");
        Self { cipher: Aes256Gcm::new(&key.into()) }
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("reading the OS random source: {e}"))?;
        let sealed = self.cipher.encrypt(&Nonce::from(nonce), plain).map_err(|_| "sealing failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < NONCE_LEN {
            return Err("sealed value is truncated".into());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| "sealed value is truncated".to_string())?;
        self.cipher
            .decrypt(&Nonce::from(nonce), body)
            .map_err(|_| "sealed value does not open under this server secret".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_under_the_same_server_secret() {
        let sealer = Sealer::new(&KeyHasher::new(b"server secret"));
        let sealed = sealer.seal(b"whsec_abc").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(sealer.open(&sealed).unwrap(), b"whsec_abc");
        assert!(Sealer::new(&KeyHasher::new(b"another secret")).open(&sealed).is_err());
    }
}
