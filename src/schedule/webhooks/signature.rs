//! Webhook signatures: `X-SD-WEBHOOK-CONTENT-HASH` is the hex HMAC-SHA512 of
//! the raw body, keyed with the base64-decoded key SpotDraft gives.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha512;

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
