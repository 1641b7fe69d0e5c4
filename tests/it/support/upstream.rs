//! A loopback fake upstream that speaks raw HTTP/1.1 so it can script what real providers do
//! (success, SSE in awkward pieces, error bodies, delays, hangs, resets), and records what the
//! gateway sent.
#![allow(deprecated)] // set_linger(0) is how the fake resets a connection

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How a streamed reply ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The proper chunked terminator.
    Finish,
    /// Close the connection abruptly (no terminator, TCP reset).
    Reset,
    /// Stop sending and keep the connection open.
    Hang,
}

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole body.
    Body {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked body written piece by piece, each after its delay.
    Stream {
        status: u16,
        headers: Vec<(String, String)>,
        pieces: Vec<(Duration, Vec<u8>)>,
        end: End,
    },
    /// Wait, then reply.
    Delay(Duration, Box<Reply>),
    /// Read the request and never answer.
    Hang,
    /// Read the request and reset the connection.
    Reset,
    /// The reply a function picks for the request: a fake that checks what it is sent, as
    /// the real provider does.
    Decide(Decider),
}

/// Picks a reply from the request; see [`Reply::Decide`].
#[derive(Clone)]
pub struct Decider(pub Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>);

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decider")
    }
}

impl Reply {
    /// A reply chosen by `f` for each request.
    pub fn decide(f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::Decide(Decider(Arc::new(f)))
    }

    /// 200 with a JSON body.
    pub fn json(body: serde_json::Value) -> Self {
        Self::status_json(200, body)
    }

    /// A status with a JSON body.
    pub fn status_json(status: u16, body: serde_json::Value) -> Self {
        Self::Body {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A status with a raw body and content type.
    pub fn raw(status: u16, content_type: &str, body: &str) -> Self {
        Self::Body {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// An SSE stream of `events` (each already framed, e.g. `data: {...}\n\n`), one write each.
    pub fn sse(events: &[&str]) -> Self {
        Self::Stream {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            pieces: events
                .iter()
                .map(|e| (Duration::ZERO, e.as_bytes().to_vec()))
                .collect(),
            end: End::Finish,
        }
    }

    /// An SSE stream from OpenAI-style JSON chunks, ending with `data: [DONE]`.
    pub fn openai_sse(chunks: &[serde_json::Value]) -> Self {
        let mut events: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        events.push("data: [DONE]\n\n".into());
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        Self::sse(&refs)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Self::Body { headers, .. } | Self::Stream { headers, .. } => {
                headers.push((name.into(), value.into()))
            }
            Self::Delay(_, inner) => **inner = (**inner).clone().header(name, value),
            _ => {}
        }
        self
    }

    /// Delays every piece of a stream by `d` (and ends it as `end`).
    pub fn paced(mut self, d: Duration, new_end: End) -> Self {
        if let Self::Stream { pieces, end, .. } = &mut self {
            for p in pieces.iter_mut() {
                p.0 = d;
            }
            *end = new_end;
        }
        self
    }

    /// Ends a stream as `end`.
    pub fn ending(mut self, new_end: End) -> Self {
        if let Self::Stream { end, .. } = &mut self {
            *end = new_end;
        }
        self
    }

    /// Replies after `d`.
    pub fn after(self, d: Duration) -> Self {
        Self::Delay(d, Box::new(self))
    }
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    connections: AtomicUsize,
    hits: AtomicUsize,
    /// Connections the client closed while the fake was still answering (or hanging).
    client_closed: AtomicUsize,
    closed: Notify,
}

/// A fake upstream on `127.0.0.1:0`.
#[derive(Clone)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeUpstream {
    /// Starts a fake that answers every request with `fallback` once the script is used up.
    pub async fn start(fallback: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        *shared.fallback.lock().unwrap() = Some(fallback);
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move { serve_conn(sock, s).await });
            }
        });
        Self { addr, shared }
    }

    /// Queues replies used before the fallback, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Replaces the fallback reply.
    pub fn set_fallback(&self, reply: Reply) {
        *self.shared.fallback.lock().unwrap() = Some(reply);
    }

    /// `http://127.0.0.1:port` plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Number of requests received.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections the client closed before the fake had finished answering.
    pub fn client_closed(&self) -> usize {
        self.shared.client_closed.load(Ordering::SeqCst)
    }

    /// Waits until the client has closed at least `n` unfinished connections.
    pub async fn wait_client_closed(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.closed.notified();
            if self.client_closed() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.client_closed() >= n;
            }
        }
    }
}

async fn serve_conn(mut sock: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::with_capacity(8192);
    loop {
        let Some(req) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        let recorded = req.clone();
        shared.requests.lock().unwrap().push(req);
        shared.hits.fetch_add(1, Ordering::SeqCst);
        let reply = {
            let next = shared.script.lock().unwrap().pop_front();
            next.or_else(|| shared.fallback.lock().unwrap().clone())
        };
        let Some(mut reply) = reply else { return };
        while let Reply::Decide(d) = reply {
            reply = (d.0)(&recorded);
        }
        match write_reply(&mut sock, reply, &shared).await {
            Ok(true) => continue,
            _ => return,
        }
    }
}

async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Recorded> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = req.parse(buf) {
            let method = req.method.unwrap_or("").to_owned();
            let target = req.path.unwrap_or("/").to_owned();
            let headers: HashMap<String, String> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_len + len {
                let mut tmp = [0u8; 8192];
                let n = sock.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let body = buf[head_len..head_len + len].to_vec();
            buf.drain(..head_len + len);
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (target, None),
            };
            return Some(Recorded {
                method,
                path,
                query,
                headers,
                body,
            });
        }
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status")
}

/// Waits for the client to close the connection, and counts it.
async fn await_client_close(sock: &mut TcpStream, shared: &Shared) {
    let mut tmp = [0u8; 1024];
    loop {
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.client_closed.fetch_add(1, Ordering::SeqCst);
    shared.closed.notify_waiters();
}

fn reset(sock: TcpStream) {
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Writes a reply; `Ok(true)` when the connection may serve another request.
async fn write_reply(sock: &mut TcpStream, reply: Reply, shared: &Shared) -> std::io::Result<bool> {
    match reply {
        Reply::Delay(d, inner) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = await_client_close(sock, shared) => return Ok(false),
            }
            Box::pin(write_reply(sock, *inner, shared)).await
        }
        Reply::Decide(d) => {
            let empty = Recorded {
                method: String::new(),
                path: String::new(),
                query: None,
                headers: HashMap::new(),
                body: Vec::new(),
            };
            Box::pin(write_reply(sock, (d.0)(&empty), shared)).await
        }
        Reply::Hang => {
            await_client_close(sock, shared).await;
            Ok(false)
        }
        Reply::Reset => {
            let _ = sock.set_linger(Some(Duration::ZERO));
            Ok(false)
        }
        Reply::Body {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(&body).await?;
            sock.flush().await?;
            Ok(true)
        }
        Reply::Stream {
            status,
            headers,
            pieces,
            end,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ntransfer-encoding: chunked\r\n",
                reason(status)
            );
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            sock.write_all(head.as_bytes()).await?;
            sock.flush().await?;
            for (delay, piece) in pieces {
                if !delay.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = await_client_close(sock, shared) => return Ok(false),
                    }
                }
                let frame = [
                    format!("{:x}\r\n", piece.len()).into_bytes(),
                    piece,
                    b"\r\n".to_vec(),
                ]
                .concat();
                if sock.write_all(&frame).await.is_err() || sock.flush().await.is_err() {
                    shared.client_closed.fetch_add(1, Ordering::SeqCst);
                    shared.closed.notify_waiters();
                    return Ok(false);
                }
            }
            match end {
                End::Finish => {
                    sock.write_all(b"0\r\n\r\n").await?;
                    sock.flush().await?;
                    Ok(true)
                }
                End::Reset => {
                    let _ = sock.set_linger(Some(Duration::ZERO));
                    Ok(false)
                }
                End::Hang => {
                    await_client_close(sock, shared).await;
                    Ok(false)
                }
            }
        }
    }
}

/// Splits `s` into pieces at the given byte offsets (any offsets; UTF-8 may be cut).
pub fn split_at(s: &str, cuts: &[usize]) -> Vec<(Duration, Vec<u8>)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut last = 0;
    for &c in cuts {
        let c = c.min(b.len());
        if c > last {
            out.push((Duration::ZERO, b[last..c].to_vec()));
            last = c;
        }
    }
    out.push((Duration::ZERO, b[last..].to_vec()));
    out
}
