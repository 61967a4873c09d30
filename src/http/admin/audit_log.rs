//! The audit query (admins and auditors): matching records oldest first, with their chain
//! position and hash, exactly as `lanyard audit export` writes them.

use super::*;

/// Default and largest page of the audit query.
pub(super) const AUDIT_PAGE: usize = 100;
pub(super) const AUDIT_PAGE_MAX: usize = 1000;

pub(super) async fn audit_query(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    q: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, OAuthError> {
    if op.require(AdminRole::Auditor).is_err() {
        op.require(AdminRole::Admin)?;
    }
    let axum::extract::Query(q) =
        q.map_err(|_| OAuthError::invalid_request("malformed query string"))?;
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let time = |k: &str| -> Result<Option<u64>, OAuthError> {
        text(k)
            .map(|v| audit::export::parse_time(&v))
            .transpose()
            .map_err(|_| {
                OAuthError::invalid_request("since and until take RFC 3339 or unix seconds")
            })
    };
    let number = |k: &str| -> Result<Option<u64>, OAuthError> {
        text(k)
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| OAuthError::invalid_request("after and limit take whole numbers"))
    };
    let filter = audit::export::Filter {
        since: time("since")?,
        until: time("until")?,
        human: text("human"),
        agent: text("agent"),
        channel: text("channel"),
        decision: text("decision"),
    };
    let limit = number("limit")?
        .map_or(AUDIT_PAGE, |l| usize::try_from(l).unwrap_or(AUDIT_PAGE_MAX))
        .clamp(1, AUDIT_PAGE_MAX);
    let mut after = number("after")?.unwrap_or(0);
    let mut records: Vec<Value> = Vec::new();
    let mut next_after = None;
    'pages: loop {
        let page = b
            .store
            .audit_since(after, AUDIT_PAGE_MAX)
            .await
            .map_err(|e| unavailable(&e))?;
        if page.is_empty() {
            break;
        }
        for entry in &page {
            after = entry.seq;
            let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(&entry.body) else {
                continue;
            };
            if !filter.matches(&record) {
                continue;
            }
            let line = audit::export::line(entry, record);
            records.push(serde_json::from_str(&line).unwrap_or(Value::Null));
            if records.len() == limit {
                next_after = Some(entry.seq);
                break 'pages;
            }
        }
    }
    Ok(ok(json!({ "records": records, "next_after": next_after })))
}
