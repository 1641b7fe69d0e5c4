//! `/admin/keys`: create (the plaintext is in the answer, once), list (never the plaintext),
//! read, change and delete virtual keys. Changes take effect at once.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::EdgeContext;
use super::decode;
use super::encode::error_response;
use crate::GatewayError;
use crate::access::KeySpec;

fn not_found(id: &str) -> Response {
    let mut resp = error_response(&GatewayError::invalid(
        "id",
        format!("no virtual key `{id}`; GET /admin/keys lists them"),
    ));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

async fn spec(state: &EdgeContext, req: Request) -> Result<KeySpec, GatewayError> {
    let body = decode::read_body(req, state.max_body_bytes.min(1 << 20)).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(KeySpec::default());
    }
    decode::parse(&body)
}

/// `POST /admin/keys`.
pub(super) async fn create(State(state): State<Arc<EdgeContext>>, req: Request) -> Response {
    let spec = match spec(&state, req).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    match state.keys.create(spec).await {
        Ok((key, plaintext)) => {
            tracing::info!(id = %key.id, name = %key.name, "virtual key created");
            let mut body = key.to_json();
            body["key"] = json!(plaintext);
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `GET /admin/keys`.
pub(super) async fn list(State(state): State<Arc<EdgeContext>>) -> Response {
    match state.keys.list().await {
        Ok(keys) => {
            let data: Vec<_> = keys.iter().map(|k| k.to_json()).collect();
            axum::Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `GET /admin/keys/{id}`.
pub(super) async fn get(State(state): State<Arc<EdgeContext>>, Path(id): Path<String>) -> Response {
    match state.keys.get(&id).await {
        Ok(Some(k)) => axum::Json(k.to_json()).into_response(),
        Ok(None) => not_found(&id),
        Err(e) => error_response(&e),
    }
}

/// `PATCH /admin/keys/{id}`.
pub(super) async fn update(
    State(state): State<Arc<EdgeContext>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let spec = match spec(&state, req).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    match state.keys.update(&id, spec).await {
        Ok(Some(k)) => {
            tracing::info!(id = %k.id, "virtual key changed");
            axum::Json(k.to_json()).into_response()
        }
        Ok(None) => not_found(&id),
        Err(e) => error_response(&e),
    }
}

/// `DELETE /admin/keys/{id}`.
pub(super) async fn delete(
    State(state): State<Arc<EdgeContext>>,
    Path(id): Path<String>,
) -> Response {
    match state.keys.delete(&id).await {
        Ok(true) => {
            tracing::info!(%id, "virtual key deleted");
            axum::Json(json!({"id": id, "object": "virtual_key", "deleted": true})).into_response()
        }
        Ok(false) => not_found(&id),
        Err(e) => error_response(&e),
    }
}
