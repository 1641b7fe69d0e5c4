//! Serving the router on a TCP listener with bounds on slow and numerous clients: request
//! headers must arrive within a deadline, a request body within another, at most
//! `max_connections` connections are open (further ones wait in the kernel's backlog), and a
//! connection whose client stops reading a response for `client_write_timeout` is closed, which
//! drops the response body (cancelling a stream's upstream and recording its usage as 499).
//!
//! `axum::serve` exposes none of these knobs, so this is hyper-util's connection builder driven
//! by hand, as in hyper-util's `server/graceful` example.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use proxygate::http::server::{ServerConfig, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = axum::Router::new();
//! serve(listener, app, ServerConfig::default(), std::future::pending()).await
//! # }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The bounds the server puts on its clients.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// How long a connection may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, from the end of its headers.
    pub body_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// How long a write to the client may make no progress before the connection is closed.
    pub client_write_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            client_write_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for open connections to
/// finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit first: beyond the cap, connections wait in the backlog, unaccepted.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small SSE events and answers must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let io = WriteTimeoutIo::new(tcp, config.client_write_timeout);
        let cut = io.cut_signal();
        let io = TokioIo::new(io);
        let app = app.clone();
        let body_timeout = config.body_read_timeout;
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let req = req.map(|body| DeadlineBody::new(body, body_timeout));
                app.clone().oneshot(req)
            });
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // hyper keeps a response body it failed to write; dropping the connection here
            // drops that body too, which cancels a stream's upstream and settles its usage.
            tokio::select! {
                res = conn => if let Err(e) = res {
                    tracing::debug!("connection closed: {e}");
                },
                () = cut.notified() => tracing::debug!("client stopped reading; connection closed"),
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

pin_project! {
    /// A TCP stream whose writes fail with `TimedOut` once one has made no progress for
    /// `timeout`: the client stopped reading and its receive window is full.
    #[derive(Debug)]
    pub struct WriteTimeoutIo<T> {
        #[pin]
        inner: T,
        timeout: Duration,
        // Armed when a write first returns Pending; cleared by any progress.
        stall: Option<Pin<Box<Sleep>>>,
        // Told when the timeout fires.
        cut: Arc<tokio::sync::Notify>,
    }
}

impl<T> WriteTimeoutIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stall: None,
            cut: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified once a write timed out, so the owner can drop the connection at once.
    pub fn cut_signal(&self) -> Arc<tokio::sync::Notify> {
        self.cut.clone()
    }
}

fn stalled(
    stall: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cut: &tokio::sync::Notify,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    let sleep = stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    ready!(sleep.as_mut().poll(cx));
    cut.notify_one();
    Poll::Ready(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client read nothing for {timeout:?}"),
    ))
}

impl<T: AsyncRead> AsyncRead for WriteTimeoutIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for WriteTimeoutIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write(cx, buf) {
            Poll::Ready(r) => {
                *this.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => stalled(this.stall, *this.timeout, this.cut, cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                *this.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => stalled(this.stall, *this.timeout, this.cut, cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        match this.inner.poll_flush(cx) {
            Poll::Ready(r) => {
                *this.stall = None;
                Poll::Ready(r)
            }
            Poll::Pending => stalled(this.stall, *this.timeout, this.cut, cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// The error a request body yields once its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

pin_project! {
    /// A request body that fails with [`BodyTimeout`] unless it ends within a deadline.
    #[derive(Debug)]
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
    }
}

impl<B> DeadlineBody<B> {
    /// Wraps `inner`, giving it `timeout` from now.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep_until(Instant::now() + timeout),
            timeout,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.deadline.poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_fails_at_its_deadline() {
        // A body that never yields a frame.
        let body = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >());
        let err = DeadlineBody::new(body, Duration::from_secs(2))
            .collect()
            .await
            .err();
        assert!(err.is_some_and(|e| e.is::<BodyTimeout>()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_is_read_whole() {
        let body = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let bytes = DeadlineBody::new(body, Duration::from_secs(2))
            .collect()
            .await
            .map(|c| c.to_bytes());
        assert_eq!(bytes.ok().as_deref(), Some(&b"{}"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_cannot_progress_times_out() {
        // A pipe with a tiny buffer that nobody reads.
        let (client, _peer) = tokio::io::duplex(8);
        let mut io = WriteTimeoutIo::new(client, Duration::from_secs(5));
        assert!(io.write_all(b"12345678").await.is_ok());
        let err = io.write_all(b"more").await.err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
    }
}
