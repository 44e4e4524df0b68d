//! Secret values at rest: AES-256-GCM with a random nonce per value, and the row's identity as
//! associated data, so that a ciphertext copied onto another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error(
        "secrets.key must be 32 random bytes in base64 (for example `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error("the stored secret could not be decrypted (wrong key, or the row was tampered with)")]
    Decrypt,
}

impl SecretBox {
    pub fn from_base64(key: &SecretString) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.expose_secret().trim())
            .map_err(|_| CryptoError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { cipher })
    }

    /// Returns (nonce, ciphertext).
    pub fn seal(&self, plaintext: &str, aad: &str) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        (nonce.to_vec(), ct)
    }

    pub fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &str,
    ) -> Result<SecretString, CryptoError> {
        if nonce.len() != 12 {
            return Err(CryptoError::Decrypt);
        }
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(pt)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from(STANDARD.encode([7u8; 32]))
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_row() {
        let b = SecretBox::from_base64(&key()).unwrap();
        let (nonce, ct) = b.seal("hunter2", "svc/env/DB_PASSWORD");
        assert!(
            !ct.windows(7).any(|w| w == b"hunter2"),
            "the ciphertext does not contain the value"
        );
        assert_eq!(
            b.open(&nonce, &ct, "svc/env/DB_PASSWORD")
                .unwrap()
                .expose_secret(),
            "hunter2"
        );
        assert_eq!(
            b.open(&nonce, &ct, "svc/env/OTHER").unwrap_err(),
            CryptoError::Decrypt,
            "bound to its row"
        );
        let other =
            SecretBox::from_base64(&SecretString::from(STANDARD.encode([8u8; 32]))).unwrap();
        assert_eq!(
            other.open(&nonce, &ct, "svc/env/DB_PASSWORD").unwrap_err(),
            CryptoError::Decrypt
        );
        let (nonce2, _) = b.seal("hunter2", "svc/env/DB_PASSWORD");
        assert_ne!(nonce, nonce2, "a fresh nonce per value");
    }

    #[test]
    fn a_malformed_key_is_refused() {
        assert_eq!(
            SecretBox::from_base64(&SecretString::from("short".to_owned())).unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            SecretBox::from_base64(&SecretString::from(STANDARD.encode([1u8; 16]))).unwrap_err(),
            CryptoError::BadKey
        );
    }
}
