//! `GET /v1/usage`: totals and breakdowns from the usage store.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::EdgeContext;
use super::encode::error_response;
use crate::GatewayError;
use crate::usage::{Bucket, UsageQuery};

/// The query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    since: Option<String>,
    until: Option<String>,
    key: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    bucket: Option<String>,
}

fn bad(field: &str, reason: String) -> Response {
    error_response(&GatewayError::InvalidRequest {
        field: field.to_owned(),
        reason,
    })
}

/// Parses an RFC 3339 time to milliseconds since the epoch.
fn parse_time(field: &str, v: &str) -> Result<i64, GatewayError> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| GatewayError::InvalidRequest {
            field: field.to_owned(),
            reason: format!("{v:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z ({e})"),
        })
}

pub(crate) async fn usage(
    State(state): State<Arc<EdgeContext>>,
    grant: Option<axum::Extension<Arc<crate::access::Grant>>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(mut p)) = params else {
        return bad("query", "the query string could not be read".into());
    };
    // A virtual key sees its own usage only.
    if let Some(id) = grant.and_then(|g| g.key_id()) {
        if p.key.as_deref().is_some_and(|k| k != &*id) {
            return error_response(&GatewayError::Forbidden(
                "a virtual key may read only its own usage; use the master key for others".into(),
            ));
        }
        p.key = Some(id.to_string());
    }
    let mut q = UsageQuery {
        key: p.key,
        provider: p.provider,
        model: p.model,
        ..UsageQuery::default()
    };
    if let Some(v) = p.since.as_deref().filter(|v| !v.is_empty()) {
        match parse_time("since", v) {
            Ok(ms) => q.since_ms = Some(ms),
            Err(e) => return error_response(&e),
        }
    }
    if let Some(v) = p.until.as_deref().filter(|v| !v.is_empty()) {
        match parse_time("until", v) {
            Ok(ms) => q.until_ms = Some(ms),
            Err(e) => return error_response(&e),
        }
    }
    if let Some(b) = p.bucket.as_deref().filter(|v| !v.is_empty()) {
        match Bucket::parse(b) {
            Some(b) => q.bucket = Some(b),
            None => return bad("bucket", format!("{b:?} is not minute, hour or day")),
        }
    }
    match state.usage.store().summary(&q).await {
        Ok(summary) => {
            let mut body = match serde_json::to_value(&summary) {
                Ok(v) => v,
                Err(e) => return error_response(&GatewayError::Internal(e.to_string())),
            };
            if let Some(obj) = body.as_object_mut() {
                obj.insert("object".into(), "usage".into());
                obj.insert(
                    "since".into(),
                    p.since.map_or(serde_json::Value::Null, Into::into),
                );
                obj.insert(
                    "until".into(),
                    p.until.map_or(serde_json::Value::Null, Into::into),
                );
                obj.insert("currency".into(), "USD".into());
                obj.insert("rates_date".into(), state.rates.date().into());
                obj.insert("store".into(), state.usage.store().kind().into());
            }
            axum::Json(body).into_response()
        }
        Err(e) => {
            tracing::warn!("{e}");
            error_response(&GatewayError::Internal(
                "the usage store could not be read; see the gateway's log".into(),
            ))
        }
    }
}
