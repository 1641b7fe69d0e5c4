use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use super::FailoverConfig;
use crate::GatewayError;
use crate::deployment::{Deployment, Routed};
use crate::telemetry::names;
use crate::types::{ChatReply, ChatRequest};

pin_project! {
    /// The failover loop: one attempt at a time down the plan, until an answer, an error that
    /// another deployment would not fix, or the end of the plan, the retry budget or the
    /// overall deadline.
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<F>,
        service: S,
        // The request as the router left it; each attempt gets a clone with its target, the
        // last one the plan allows gets the request itself.
        request: ChatRequest,
        plan: Arc<[Deployment]>,
        next: usize,
        // Chosen for the next attempt, waiting for the service to be ready.
        pending: Option<Deployment>,
        attempts: u32,
        tried: Vec<String>,
        last: Option<GatewayError>,
        // Deployments whose circuit opened between routing and their attempt.
        open_retry: Option<Duration>,
        config: FailoverConfig,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Idle,
        Calling { #[pin] fut: Instrumented<F> },
    }
}

impl<S, F> ResponseFuture<S, F> {
    pub(super) fn new(
        service: S,
        request: ChatRequest,
        plan: Arc<[Deployment]>,
        config: FailoverConfig,
    ) -> Self {
        Self {
            state: State::Idle,
            service,
            request,
            plan,
            next: 0,
            pending: None,
            attempts: 0,
            tried: Vec::new(),
            last: None,
            open_retry: None,
            config,
        }
    }
}

impl<S, F> std::fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("failover::ResponseFuture")
            .field("attempts", &self.attempts)
            .field("tried", &self.tried)
            .finish_non_exhaustive()
    }
}

/// The next deployment worth an attempt, if the budget allows one.
fn next_target(
    plan: &[Deployment],
    next: &mut usize,
    tried: &[String],
    attempts: u32,
    config: &FailoverConfig,
    deadline: Option<Instant>,
) -> Option<Deployment> {
    if attempts >= config.max_attempts() {
        return None;
    }
    if attempts > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
        return None;
    }
    // The tier of the first choice bounds the rest, so a free request never spends money.
    let tier = plan.first()?.tier();
    while let Some(d) = plan.get(*next) {
        *next += 1;
        if tried.iter().any(|t| t.as_str() == &**d.id()) {
            continue; // each deployment at most once per request
        }
        if !config.cross_tier && d.tier() != tier {
            continue;
        }
        return Some(d.clone());
    }
    None
}

impl<S> Future for ResponseFuture<S, S::Future>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError>,
{
    type Output = Result<ChatReply, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Calling { fut } = this.state.as_mut().project() {
                let out = ready!(fut.poll(cx));
                this.state.set(State::Idle);
                match out {
                    Ok(mut reply) => {
                        // A stream is committed here: Translate resolves only after its first
                        // chunk, so later failures travel in the stream and are not retried.
                        reply.meta.attempts = *this.attempts;
                        return Poll::Ready(Ok(reply));
                    }
                    Err(GatewayError::CircuitOpen { retry_in, .. }) => {
                        // Opened since routing: nothing was contacted, so it is no attempt.
                        *this.attempts -= 1;
                        this.tried.pop();
                        *this.open_retry =
                            Some(this.open_retry.map_or(retry_in, |r| r.min(retry_in)));
                    }
                    Err(e) if e.is_ceiling() => {
                        // At its own ceiling: nothing was contacted, so it is no attempt; its
                        // 429 is the answer only when nothing else is.
                        *this.attempts -= 1;
                        this.tried.pop();
                        if this.last.is_none() {
                            *this.last = Some(e);
                        }
                    }
                    // The client's own mistake (a 400): another deployment would say the same.
                    Err(e) if !e.is_retryable() => return Poll::Ready(Err(e)),
                    Err(e) => {
                        tracing::debug!(
                            deployment = this.tried.last().map(String::as_str).unwrap_or(""),
                            attempt = *this.attempts,
                            kind = e.kind(),
                            "attempt failed: {e}"
                        );
                        *this.last = Some(e);
                    }
                }
            }

            if this.pending.is_none() {
                *this.pending = next_target(
                    this.plan,
                    this.next,
                    this.tried,
                    *this.attempts,
                    this.config,
                    this.request.ctx.deadline,
                );
            }
            let Some(target) = this.pending.clone() else {
                return Poll::Ready(Err(final_error(
                    &this.request.model,
                    *this.attempts,
                    std::mem::take(this.tried),
                    this.last.take(),
                    *this.open_retry,
                )));
            };
            if let Err(e) = ready!(this.service.poll_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            *this.pending = None;
            *this.attempts += 1;
            if this.last.is_some() {
                metrics::counter!(names::FAILOVERS_TOTAL).increment(1);
            }
            this.tried.push(target.id().to_string());
            let span = tracing::debug_span!("attempt", deployment = %target.id(), attempt = *this.attempts);
            let mut req = if *this.next >= this.plan.len() {
                // No deployment can follow this one, so the request moves into the attempt
                // instead of being cloned; what stays is what the loop still reads (the model
                // for the final error, the context for the deadline).
                let rest = ChatRequest {
                    model: this.request.model.clone(),
                    ctx: this.request.ctx.clone(),
                    ..Default::default()
                };
                std::mem::replace(this.request, rest)
            } else {
                this.request.clone()
            };
            req.ctx.set_target(Some(target));
            req.ctx.attempt = *this.attempts;
            let fut = this.service.call(req).instrument(span);
            this.state.set(State::Calling { fut });
        }
    }
}

fn final_error(
    model: &str,
    attempts: u32,
    tried: Vec<String>,
    last: Option<GatewayError>,
    open_retry: Option<Duration>,
) -> GatewayError {
    match (attempts, last) {
        (0, last) => match (open_retry, last) {
            (Some(retry_in), _) => GatewayError::NoHealthyDeployment {
                model: model.to_owned(),
                retry_in,
            },
            // Every candidate was at its own ceiling.
            (None, Some(ceiling)) => ceiling,
            (None, None) => {
                GatewayError::Internal(format!("no deployment was chosen for `{model}`"))
            }
        },
        // One attempt: its own error already names the provider.
        (1, Some(last)) => last,
        (_, Some(last)) => GatewayError::AllAttemptsFailed {
            tried,
            last: Box::new(last),
        },
        (_, None) => GatewayError::Internal("failover ended without an outcome".into()),
    }
}
