//! Encryption at rest of customers' contact details (email, phone): AES-256-GCM, a fresh
//! random nonce per value, key from the configuration (`--encryption-key`).
//!
//! An encrypted value is text, `enc:v1:<base64 of nonce ‖ ciphertext ‖ tag>`, so it fits the
//! TEXT columns it replaces. The notification service stores contacts encrypted
//! (`notification_preferences`, `sent_notifications`) and decrypts them to send; the audit
//! log stores user events with their `email` and `phone` fields encrypted
//! ([`FieldCipher::seal_json_fields`]), and its hash chain covers the stored (encrypted) text.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// Why a value could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Not base64 or too short.
    #[error("malformed encrypted value")]
    Malformed,
    /// The tag did not verify: another key, or the value was altered.
    #[error("the value does not decrypt with this key (wrong key, or altered)")]
    Authentication,
}

/// Encrypts and decrypts fields; cheap to clone.
#[derive(Clone)]
pub struct FieldCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher(..)")
    }
}

impl FieldCipher {
    /// A cipher from `key`: 32 bytes in base64, or any passphrase (hashed with SHA-256).
    pub fn new(key: &str) -> Self {
        let bytes: [u8; 32] = match STANDARD.decode(key.trim()) {
            Ok(decoded) if decoded.len() == 32 => decoded.try_into().expect("32 bytes"),
            _ => Sha256::digest(key.as_bytes()).into(),
        };
        FieldCipher {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        }
    }

    /// `plaintext`, encrypted.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Whether `value` is an encrypted value.
    pub fn is_encrypted(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// The plaintext of `value`; values that are not encrypted (written before encryption
    /// was on) come back as they are.
    pub fn decrypt(&self, value: &str) -> Result<String, CryptoError> {
        let Some(encoded) = value.strip_prefix(PREFIX) else {
            return Ok(value.to_owned());
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Authentication)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Malformed)
    }

    /// A JSON document with the string values of `fields` (at the top level) encrypted;
    /// text that is not a JSON object comes back unchanged.
    pub fn seal_json_fields(&self, json: &str, fields: &[&str]) -> String {
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(json) else {
            return json.to_owned();
        };
        let mut changed = false;
        for field in fields {
            if let Some(serde_json::Value::String(value)) = object.get_mut(*field) {
                if !Self::is_encrypted(value) {
                    *value = self.encrypt(value);
                    changed = true;
                }
            }
        }
        if changed {
            serde_json::Value::Object(object).to_string()
        } else {
            json.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_differ_each_time() {
        let cipher = FieldCipher::new("a passphrase");
        let a = cipher.encrypt("ann@example.com");
        let b = cipher.encrypt("ann@example.com");
        assert!(a.starts_with("enc:v1:"));
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("ann"));
        assert_eq!(cipher.decrypt(&a).unwrap(), "ann@example.com");
        assert_eq!(cipher.decrypt("plain").unwrap(), "plain");
    }

    #[test]
    fn another_key_or_an_altered_value_does_not_decrypt() {
        let cipher = FieldCipher::new(&STANDARD.encode([7u8; 32]));
        let sealed = cipher.encrypt("+31612345678");
        assert!(matches!(
            FieldCipher::new("other").decrypt(&sealed),
            Err(CryptoError::Authentication)
        ));
        let mut altered = sealed.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(cipher.decrypt(&altered).is_err());
        assert!(matches!(
            cipher.decrypt("enc:v1:!!"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn json_fields_are_sealed_in_place() {
        let cipher = FieldCipher::new("k");
        let json =
            r#"{"type":"UserRegistered","email":"ann@example.com","phone":"+1","name":"Ann"}"#;
        let sealed = cipher.seal_json_fields(json, &["email", "phone"]);
        assert!(!sealed.contains("ann@example.com") && !sealed.contains("\"+1\""));
        assert!(sealed.contains("\"name\":\"Ann\""));
        let value: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        assert_eq!(
            cipher.decrypt(value["email"].as_str().unwrap()).unwrap(),
            "ann@example.com"
        );
        assert_eq!(cipher.seal_json_fields("not json", &["email"]), "not json");
        assert_eq!(
            cipher.seal_json_fields(&sealed, &["email", "phone"]),
            sealed
        );
    }
}
