//! The webhook HMAC key: `GET v2.1/public/webhooks/hmac_key/`, which answers
//! the key SpotDraft signs webhook bodies with, base64-encoded.

use super::{Call, FetchError, SpotDraftClient};
use crate::secret::Secret;
use reqwest::Method;

#[derive(serde::Deserialize)]
struct HmacKeyResponse {
    hmac_key: String,
}

impl SpotDraftClient {
    /// `GET v2.1/public/webhooks/hmac_key/`: the webhook HMAC key as SpotDraft
    /// gives it (base64; decode it before use). Counted with the list requests.
    pub async fn webhook_hmac_key(&self) -> Result<Secret, FetchError> {
        let url = self.endpoint(&["v2.1", "public", "webhooks", "hmac_key", ""])?;
        let parse = |b: &[u8]| serde_json::from_slice::<HmacKeyResponse>(b);
        let key = self
            .call_parsed(Call::new(Method::GET, url, &self.counters.list), parse)
            .await?;
        Ok(Secret::new(key.hmac_key))
    }
}
