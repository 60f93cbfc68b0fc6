//! Webhook signatures: `X-SD-WEBHOOK-CONTENT-HASH` is the hex HMAC-SHA512 of
//! the raw body, keyed with the base64-decoded key SpotDraft gives; an ERP
//! event's `X-Contract-Recon-Signature` is `sha256=` and the hex HMAC-SHA256
//! of the raw body, keyed with the job's shared secret.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-SD-WEBHOOK-CONTENT-HASH";

/// A webhook HMAC key, decoded. `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey([redacted])")
    }
}

/// A key that is not base64.
#[derive(Debug, thiserror::Error)]
#[error("the webhook HMAC key is not base64 (as SpotDraft's hmac_key endpoint gives it)")]
pub struct KeyNotBase64;

impl WebhookKey {
    /// Decodes a key given base64 (as SpotDraft's hmac_key endpoint answers it).
    pub fn from_base64(text: &str) -> Result<WebhookKey, KeyNotBase64> {
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) if !bytes.is_empty() => Ok(WebhookKey(bytes)),
            _ => Err(KeyNotBase64),
        }
    }

    /// A key from its raw bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> WebhookKey {
        WebhookKey(bytes.into())
    }

    fn mac(&self) -> Hmac<Sha512> {
        // HMAC takes keys of any length.
        Hmac::<Sha512>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// The signature SpotDraft sends for `body`: lowercase hex HMAC-SHA512
    /// (for tests and the sandbox, which sign deliveries).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// True when `signature` (hex, either case) is `body`'s; compared in
    /// constant time.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(given) = hex::decode(signature.trim()) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    }
}

/// The header carrying an ERP event's signature.
pub const ERP_SIGNATURE_HEADER: &str = "X-Contract-Recon-Signature";

/// The shared secret ERP events are signed with: the header is
/// `sha256=<hex HMAC-SHA256 of the raw body>`. `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct ErpEventKey(Vec<u8>);

impl std::fmt::Debug for ErpEventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErpEventKey([redacted])")
    }
}

impl ErpEventKey {
    /// The secret's bytes, as given (not decoded).
    pub fn new(secret: impl Into<Vec<u8>>) -> ErpEventKey {
        ErpEventKey(secret.into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// The header value for `body`: `sha256=` and the lowercase hex
    /// HMAC-SHA256 (for the ERP side, and tests).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// True when `header` is `sha256=<hex>` (hex in either case) of `body`;
    /// compared in constant time.
    pub fn verify(&self, body: &[u8], header: &str) -> bool {
        let Some(hex_part) = header.trim().strip_prefix("sha256=") else {
            return false;
        };
        let Ok(given) = hex::decode(hex_part) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod erp_tests {
    use super::*;

    #[test]
    fn erp_signature_is_the_rfc4231_hmac_sha256() {
        // RFC 4231, test case 2.
        let key = ErpEventKey::new(*b"Jefe");
        let body = b"what do ya want for nothing?";
        let expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(key.sign(body), expected);
        assert!(key.verify(body, expected));
        assert!(key.verify(body, &expected.to_uppercase().replace("SHA256=", "sha256=")));
        assert!(
            !key.verify(body, &expected["sha256=".len()..]),
            "prefix required"
        );
        assert!(!key.verify(b"what do ya want for nothing!", expected));
        assert!(!key.verify(body, "sha256=zz"));
        assert!(!ErpEventKey::new(*b"Jefe2").verify(body, expected));
        assert_eq!(format!("{key:?}"), "ErpEventKey([redacted])");
    }
}
