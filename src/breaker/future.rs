use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::StatusCode;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::BreakerConfig;
use crate::GatewayError;
use crate::health::DeploymentHealth;
use crate::health::Permit;
use crate::types::ChatReply;

pin_project! {
    /// The breaker's future: an immediate `CircuitOpen`, or the inner call holding its permit
    /// until the outcome is known (dropping it gives a probe slot back).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Rejected { error: Option<GatewayError> },
        Called {
            #[pin]
            fut: F,
            permit: Option<Permit>,
            deployment: Arc<DeploymentHealth>,
            config: BreakerConfig,
            started: Instant,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn rejected(error: GatewayError) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
        }
    }

    pub(super) fn called(
        fut: F,
        permit: Permit,
        deployment: Arc<DeploymentHealth>,
        config: BreakerConfig,
    ) -> Self {
        Self {
            state: State::Called {
                fut,
                permit: Some(permit),
                deployment,
                config,
                started: Instant::now(),
            },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("breaker::ResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ChatReply, GatewayError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Rejected { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                GatewayError::Internal("breaker future polled after completion".into())
            }))),
            StateProj::Called {
                fut,
                permit,
                deployment,
                config,
                started,
            } => {
                let out = ready!(fut.poll(cx));
                let now = Instant::now();
                let Some(permit) = permit.take() else {
                    return Poll::Ready(out);
                };
                match &out {
                    // A stream resolves here only once its first chunk arrived: a success.
                    Ok(_) => {
                        deployment.record_latency(now - *started, now);
                        permit.succeed();
                    }
                    Err(e) if e.is_deployment_failure() => {
                        if let GatewayError::Timeout { .. } = e {
                            // A deployment that hangs is slow, whatever it answers later.
                            deployment.record_latency(now - *started, now);
                        }
                        if let GatewayError::Upstream {
                            status: StatusCode::TOO_MANY_REQUESTS,
                            retry_after: Some(after),
                            ..
                        } = e
                        {
                            deployment.circuit().cool_until(now + *after);
                        }
                        permit.fail(config, now);
                    }
                    // The upstream answered, just not favourably for this request (its 400).
                    Err(_) => permit.succeed(),
                }
                Poll::Ready(out)
            }
        }
    }
}
