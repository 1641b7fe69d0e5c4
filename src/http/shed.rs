//! Edge limits: request headers larger than `MAX_HEADER_BYTES` get 431, and beyond
//! `MAX_INFLIGHT_REQUESTS` requests in flight a new one gets a fast 503 with `retry-after`
//! instead of joining a queue without end (load shedding, as tower's `LoadShed` over a
//! `ConcurrencyLimit`). A request counts until its response body ends, so streams count for
//! their whole length. `/health` and `/metrics` are never shed: probes must see an
//! overloaded gateway as alive.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::encode::error_response;
use crate::GatewayError;

/// Applies [`EdgeLimits`].
#[derive(Clone, Debug)]
pub struct EdgeLimitsLayer {
    inflight: Arc<Semaphore>,
    limit: usize,
    max_header_bytes: usize,
}

impl EdgeLimitsLayer {
    /// At most `max_inflight` requests in flight and `max_header_bytes` of headers each.
    pub fn new(max_inflight: usize, max_header_bytes: usize) -> Self {
        let limit = max_inflight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inflight: Arc::new(Semaphore::new(limit)),
            limit,
            max_header_bytes,
        }
    }
}

impl<S> Layer<S> for EdgeLimitsLayer {
    type Service = EdgeLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeLimits {
            inner,
            layer: self.clone(),
        }
    }
}

/// Sheds load and refuses oversized headers; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct EdgeLimits<S> {
    inner: S,
    layer: EdgeLimitsLayer,
}

fn header_bytes(req: &Request) -> usize {
    req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

impl<S> Service<Request> for EdgeLimits<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if header_bytes(&req) > self.layer.max_header_bytes {
            let mut resp = error_response(&GatewayError::invalid(
                "headers",
                format!(
                    "are larger than {} bytes (MAX_HEADER_BYTES)",
                    self.layer.max_header_bytes
                ),
            ));
            *resp.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return ResponseFuture::Refused { resp: Some(resp) };
        }
        let path = req.uri().path();
        let permit = if path == "/health" || path == "/metrics" {
            None
        } else {
            match self.layer.inflight.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let err = GatewayError::Overloaded {
                        limit: self.layer.limit,
                    };
                    return ResponseFuture::Refused {
                        resp: Some(error_response(&err)),
                    };
                }
            }
        };
        ResponseFuture::Called {
            inner: self.inner.call(req),
            permit,
        }
    }
}

pin_project! {
    /// The [`EdgeLimits`] future: refused at once, or the inner call holding its permit.
    #[project = StateProj]
    #[allow(missing_docs)]
    pub enum ResponseFuture<F> {
        Refused { resp: Option<Response> },
        Called { #[pin] inner: F, permit: Option<OwnedSemaphorePermit> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StateProj::Refused { resp } => Poll::Ready(Ok(resp.take().unwrap_or_default())),
            StateProj::Called { inner, permit } => {
                let resp = ready!(inner.poll(cx))?;
                Poll::Ready(Ok(match permit.take() {
                    // The permit goes with the body: a stream holds it until its end.
                    Some(permit) => resp.map(|body| {
                        Body::new(PermitBody {
                            inner: body,
                            _permit: permit,
                        })
                    }),
                    None => resp,
                }))
            }
        }
    }
}

pin_project! {
    struct PermitBody {
        #[pin]
        inner: Body,
        _permit: OwnedSemaphorePermit,
    }
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn beyond_the_limit_requests_are_shed_at_once_and_health_is_not() {
        let layer = EdgeLimitsLayer::new(1, 32 * 1024);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let svc = layer.layer(tower::service_fn(move |_req: Request| {
            let rx = rx.clone();
            async move {
                let first = rx.lock().await.take();
                if let Some(rx) = first {
                    let _ = rx.await;
                }
                Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok")))
            }
        }));
        let first = tokio::spawn(svc.clone().oneshot(Request::new(Body::empty())));
        tokio::task::yield_now().await;
        while layer.inflight.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let shed = svc
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(shed.status(), 503);
        assert!(shed.headers().contains_key("retry-after"));
        let health = Request::get("/health").body(Body::empty()).unwrap();
        assert_eq!(svc.clone().oneshot(health).await.unwrap().status(), 200);
        tx.send(()).unwrap();
        let resp = first.await.unwrap().unwrap();
        // Still counted until the body is read.
        assert_eq!(layer.inflight.available_permits(), 0);
        drop(resp);
        assert_eq!(layer.inflight.available_permits(), 1);
    }

    #[tokio::test]
    async fn oversized_headers_get_431() {
        let svc = EdgeLimitsLayer::new(10, 1024).layer(tower::service_fn(|_req: Request| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let req = Request::get("/v1/models")
            .header("x-big", "a".repeat(2000))
            .body(Body::empty())
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 431);
    }
}
