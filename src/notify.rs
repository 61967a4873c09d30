//! Outbound notifications: JSON POSTs to webhooks people configured (an agent owner's, an
//! approvers' channel). Best effort, in the background, never delaying the request that
//! caused them; redirects are not followed and each delivery has a deadline.
//!
//! With `idp` (discovery and JWKS), this is the only place lanyard makes HTTP requests.

use std::time::Duration;

/// Deadline of one delivery.
const TIMEOUT: Duration = Duration::from_secs(5);

/// POST `body` as JSON to `url` in the background; the outcome is logged under `event`.
pub fn post_json(url: url::Url, event: &'static str, body: serde_json::Value) {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "webhook client unavailable");
                return;
            }
        };
        match client.post(url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::debug!(event, "webhook delivered");
            }
            Ok(resp) => tracing::warn!(event, status = %resp.status(), "webhook refused"),
            Err(e) => tracing::warn!(event, error = %e, "webhook failed"),
        }
    });
}
