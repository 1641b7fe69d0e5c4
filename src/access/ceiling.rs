//! Per-deployment ceilings: a configured deployment's own `rpm`/`tpm`, counted per attempt in
//! the same [`Counters`] as the keys' rate limits (shared by every replica through Redis when
//! it is configured). A deployment at its ceiling is not contacted: the attempt ends with a
//! retryable 429 that failover does not count as an attempt (it goes on to the next deployment
//! of the plan, even with failover off), and the deployment cools down until its window turns,
//! so the router leaves it out of later plans meanwhile.
//! When every candidate is at its ceiling the client gets a 429 with `retry-after`.
//!
//! A request's tokens are counted at admission as its prompt estimate plus its output cap, and
//! the window is corrected with the provider's real prompt + completion tokens when the answer
//! ends (as for the keys' `tpm`).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service, ServiceExt};

use super::limit::{Counters, Limit};
use crate::GatewayError;
use crate::deployment::Routed;
use crate::types::{ChatChunk, ChatReply, ChatRequest, ChatStream, ReplyBody};

/// Applies [`Ceilings`] around the dispatch of each attempt.
#[derive(Clone)]
pub struct CeilingLayer {
    counters: Arc<dyn Counters>,
}

impl std::fmt::Debug for CeilingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeilingLayer")
            .field("counters", &self.counters.kind())
            .finish()
    }
}

impl CeilingLayer {
    /// Counts ceilings in `counters`.
    pub fn new(counters: Arc<dyn Counters>) -> Self {
        Self { counters }
    }
}

impl<S> Layer<S> for CeilingLayer {
    type Service = Ceilings<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Ceilings {
            inner,
            counters: self.counters.clone(),
        }
    }
}

/// Checks the target deployment's ceilings before each attempt; see the [module docs](self).
#[derive(Clone)]
pub struct Ceilings<S> {
    inner: S,
    counters: Arc<dyn Counters>,
}

impl<S> std::fmt::Debug for Ceilings<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ceilings").finish_non_exhaustive()
    }
}

impl<S> Service<ChatRequest> for Ceilings<S>
where
    S: Service<ChatRequest, Response = ChatReply, Error = GatewayError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatReply;
    type Error = GatewayError;
    type Future = Either<S::Future, BoxFuture<'static, Result<ChatReply, GatewayError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let Some(target) = req.ctx.target().filter(|d| !d.ceiling().is_none()).cloned() else {
            return Either::Left(self.inner.call(req));
        };
        let ceiling = target.ceiling();
        let provider = target.provider().name;
        let mut limits = Vec::with_capacity(2);
        let mut estimate = 0;
        if let Some(max) = ceiling.rpm {
            limits.push(Limit {
                name: format!("ceiling-rpm:{provider}"),
                max,
                cost: 1,
            });
        }
        if let Some(max) = ceiling.tpm {
            estimate = req
                .estimate_prompt_tokens()
                .saturating_add(req.output_cap().unwrap_or(0));
            limits.push(Limit {
                name: format!("ceiling-tpm:{provider}"),
                max,
                cost: estimate,
            });
        }
        let counters = self.counters.clone();
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        Either::Right(Box::pin(async move {
            let window = counters.window();
            match counters.hit(&limits).await {
                Ok(v) if !v.allowed => {
                    let retry = v.reset_in.max(std::time::Duration::from_secs(1));
                    target
                        .state()
                        .circuit()
                        .cool_until(tokio::time::Instant::now() + retry);
                    let which =
                        if ceiling.rpm.is_some() && v.remaining.first().is_some_and(|r| *r == 0) {
                            "rpm"
                        } else {
                            "tpm"
                        };
                    Err(GatewayError::Upstream {
                        provider,
                        status: http::StatusCode::TOO_MANY_REQUESTS,
                        message: format!(
                            "deployment `{provider}` is at its {which} ceiling for this minute"
                        ),
                        code: Some(crate::error::CEILING_CODE.to_owned()),
                        retry_after: Some(retry),
                    })
                }
                Ok(_) if ceiling.tpm.is_some() => {
                    let charge = Charge {
                        counters,
                        name: format!("ceiling-tpm:{provider}"),
                        window,
                        estimate,
                        real: None,
                    };
                    let mut reply = inner.oneshot(req).await?;
                    reply.body = match reply.body {
                        ReplyBody::Stream(s) => {
                            ReplyBody::Stream(Box::pin(Corrected { inner: s, charge }))
                        }
                        body => {
                            // A whole answer settles the charge with its real tokens now.
                            let mut charge = charge;
                            charge.real = match &body {
                                ReplyBody::Complete(r) => r.usage.as_ref().map(usage_tokens),
                                ReplyBody::Raw(r) => Some(usage_tokens(&r.usage)),
                                _ => None,
                            };
                            drop(charge);
                            body
                        }
                    };
                    Ok(reply)
                }
                Ok(_) => inner.oneshot(req).await,
                // Counters out of reach: the ceiling cannot be checked; serve rather than refuse.
                Err(e) => {
                    tracing::warn!(deployment = provider, "ceiling not checked: {e}");
                    inner.oneshot(req).await
                }
            }
        }))
    }
}

fn usage_tokens(u: &crate::types::Usage) -> u64 {
    u.prompt_tokens.saturating_add(u.completion_tokens)
}

/// The tokens a request was admitted with in a deployment's `tpm` window; when dropped, moves
/// the window by the real tokens' difference (nothing when the provider reported none).
struct Charge {
    counters: Arc<dyn Counters>,
    name: String,
    window: u64,
    estimate: u64,
    real: Option<u64>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(real) = self.real {
            let delta = i64::try_from(real).unwrap_or(i64::MAX)
                - i64::try_from(self.estimate).unwrap_or(i64::MAX);
            if delta != 0 {
                self.counters.correct(&self.name, self.window, delta);
            }
        }
    }
}

/// A stream that notes its usage chunk for the [`Charge`] it carries.
struct Corrected {
    inner: ChatStream,
    charge: Charge,
}

impl Stream for Corrected {
    type Item = Result<ChatChunk, GatewayError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next
            && let Some(u) = &chunk.usage
        {
            self.charge.real = Some(usage_tokens(u));
        }
        next
    }
}
