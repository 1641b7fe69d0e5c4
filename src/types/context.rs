use std::sync::Arc;

use crate::deployment::Deployment;

/// What the gateway knows about a request besides its body. Never serialized.
///
/// The router fills `plan`, the failover layer sets `target` for each attempt, and the
/// dispatch service at the bottom sends the request to `target`.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The id echoed in logs and `x-request-id`.
    pub request_id: Option<Arc<str>>,
    /// Deployments in the order the routing strategy chose.
    pub plan: Option<Arc<[Deployment]>>,
    /// The deployment this attempt goes to.
    pub target: Option<Deployment>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The overall deadline of the request, across attempts.
    pub deadline: Option<tokio::time::Instant>,
    /// The virtual key that made the request, if any.
    pub key_id: Option<Arc<str>>,
    /// The client API the request came through.
    pub endpoint: crate::usage::Endpoint,
}
