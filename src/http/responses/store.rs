//! Stored responses: `previous_response_id`, `GET`, `DELETE` and `input_items`, over the usage
//! database. A response belongs to the caller that created it; any other caller gets 404.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::encode::new_id;
use crate::db::{SqlResponseStore, StoredResponse};
use crate::http::EdgeContext;
use crate::types::responses::{Item, ResponseObject, items_from_values};

/// Who owns what a request stores: `key:<id>`, `master` or `open`.
pub fn owner(state: &EdgeContext, grant: Option<&crate::access::Grant>) -> String {
    match grant.and_then(|g| g.key_id()) {
        Some(id) => format!("key:{id}"),
        None if state.master_key.is_some() => "master".into(),
        None => "open".into(),
    }
}

/// The store, when the gateway has a database.
pub fn store(state: &EdgeContext) -> Option<SqlResponseStore> {
    state.db.clone().map(SqlResponseStore::new)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// An OpenAI-shaped error that is not a [`crate::GatewayError`] (404s of stored responses,
/// store failures).
pub fn error(status: StatusCode, param: Option<&str>, code: &str, message: &str) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
        ),
    )
        .into_response()
}

fn not_found(id: &str, param: Option<&str>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        param,
        "not_found",
        &format!("No response found with id '{id}'."),
    )
}

/// The stored conversation of `id` (its input items, then its output), or the error response.
pub async fn previous_items(
    state: &EdgeContext,
    owner: &str,
    id: &str,
) -> Result<Vec<Item>, Response> {
    let Some(store) = store(state) else {
        return Err(not_found(id, Some("previous_response_id")));
    };
    let row = match store.get(id, owner, now_ms()).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(not_found(id, Some("previous_response_id"))),
        Err(e) => return Err(store_error(&e)),
    };
    let (input, response) = decode_row(&row).ok_or_else(|| corrupt(id))?;
    let mut items = input;
    items.extend(response.output);
    Ok(items)
}

fn store_error(e: &crate::usage::StoreError) -> Response {
    tracing::warn!(error = %e.0, "stored responses: database error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "store_unavailable",
        "the response store is unavailable; retry later",
    )
}

fn corrupt(id: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "server_error",
        &format!("the stored response '{id}' cannot be read"),
    )
}

fn decode_row(row: &StoredResponse) -> Option<(Vec<Item>, ResponseObject)> {
    let values: Vec<Value> = serde_json::from_str(&row.input_items).ok()?;
    let items = items_from_values(values).ok()?;
    let response = serde_json::from_str(&row.response).ok()?;
    Some((items, response))
}

/// Gives every input item an id, as `input_items` lists them with one.
pub fn with_ids(items: &mut [Item]) {
    for item in items {
        match item {
            Item::Message(m) if m.id.is_none() => m.id = Some(new_id("msg")),
            Item::FunctionCall(c) if c.id.is_none() => c.id = Some(new_id("fc")),
            Item::FunctionCallOutput(o) if o.id.is_none() => o.id = Some(new_id("fco")),
            Item::Reasoning(r) if r.id.is_empty() => r.id = new_id("rs"),
            _ => {}
        }
    }
}

/// Keeps `response` with its input `items` for `ttl_days`.
pub async fn save(
    store: &SqlResponseStore,
    owner: String,
    ttl_days: u64,
    items: &[Item],
    response: &ResponseObject,
) -> Result<(), crate::usage::StoreError> {
    let now = now_ms();
    let ttl_ms = i64::try_from(ttl_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    let row = StoredResponse {
        id: response.id.clone(),
        owner,
        created_at_ms: now,
        expires_at_ms: now.saturating_add(ttl_ms),
        response: serde_json::to_string(response).unwrap_or_default(),
        input_items: serde_json::to_string(items).unwrap_or_default(),
    };
    store.put(&row).await
}

async fn load(
    state: &EdgeContext,
    owner: &str,
    id: &str,
) -> Result<(Vec<Item>, ResponseObject), Response> {
    let Some(store) = store(state) else {
        return Err(not_found(id, None));
    };
    match store.get(id, owner, now_ms()).await {
        Ok(Some(row)) => decode_row(&row).ok_or_else(|| corrupt(id)),
        Ok(None) => Err(not_found(id, None)),
        Err(e) => Err(store_error(&e)),
    }
}

/// `GET /v1/responses/{id}`.
pub async fn get(
    State(state): State<Arc<EdgeContext>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let owner = owner(&state, super::super::auth::grant(&req).as_deref());
    drop(req);
    match load(&state, &owner, &id).await {
        Ok((_, response)) => axum::Json(response).into_response(),
        Err(r) => r,
    }
}

/// `GET /v1/responses/{id}/input_items`: every input item, oldest first.
pub async fn input_items(
    State(state): State<Arc<EdgeContext>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let owner = owner(&state, super::super::auth::grant(&req).as_deref());
    drop(req);
    match load(&state, &owner, &id).await {
        Ok((items, _)) => {
            let id_of = |i: &Item| match i {
                Item::Message(m) => m.id.clone(),
                Item::FunctionCall(c) => c.id.clone(),
                Item::FunctionCallOutput(o) => o.id.clone(),
                Item::Reasoning(r) => Some(r.id.clone()),
                Item::ItemReference(r) => Some(r.id.clone()),
            };
            axum::Json(json!({
                "object": "list",
                "first_id": items.first().and_then(id_of),
                "last_id": items.last().and_then(id_of),
                "has_more": false,
                "data": items,
            }))
            .into_response()
        }
        Err(r) => r,
    }
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(state): State<Arc<EdgeContext>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let owner = owner(&state, super::super::auth::grant(&req).as_deref());
    let Some(store) = store(&state) else {
        return not_found(&id, None);
    };
    match store.delete(&id, &owner, now_ms()).await {
        Ok(true) => axum::Json(json!({"id": id, "object": "response.deleted", "deleted": true}))
            .into_response(),
        Ok(false) => not_found(&id, None),
        Err(e) => store_error(&e),
    }
}
