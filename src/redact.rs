//! Keys never leak: every secret the gateway was configured with (provider keys,
//! the master key, the database password) is registered here when a gateway is built, and
//! [`redact`] replaces it, whole or any ten-character piece of it, with `***`. The error
//! envelope, stream error events, the binary's log writer (every level, upstream error
//! bodies and URLs included) and its panic hook all pass their text through it, so an
//! upstream that echoes the key, or a `?key=` in a URL, is caught wherever it surfaces.
//!
//! Secrets shorter than 8 characters are not registered: they are test values, and
//! redacting them would mangle ordinary text.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

/// The piece length below which a fragment of a key is not considered a leak.
const PIECE: usize = 10;
/// Shortest secret registered.
const MIN_SECRET: usize = 8;

#[derive(Default)]
struct Registry {
    secrets: BTreeSet<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    secrets: BTreeSet::new(),
    matcher: None,
});

/// The password of a `scheme://user:password@host` URL.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let creds = &rest[..rest.find('@')?];
    creds.split_once(':').map(|(_, p)| p)
}

/// Registers more secrets.
pub fn register_secrets(secrets: impl IntoIterator<Item = String>) {
    let Ok(mut reg) = REGISTRY.write() else {
        return;
    };
    let before = reg.secrets.len();
    reg.secrets.extend(
        secrets
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| s.len() >= MIN_SECRET),
    );
    if reg.secrets.len() == before {
        return;
    }
    let mut patterns: BTreeSet<&str> = BTreeSet::new();
    for s in &reg.secrets {
        patterns.insert(s);
        let b = s.as_bytes();
        if b.len() > PIECE {
            for start in 0..=b.len() - PIECE {
                if s.is_char_boundary(start) && s.is_char_boundary(start + PIECE) {
                    patterns.insert(&s[start..start + PIECE]);
                }
            }
        }
    }
    // Leftmost-longest: the whole key wins over its pieces.
    reg.matcher = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns)
        .ok()
        .map(Arc::new);
}

fn matcher() -> Option<Arc<AhoCorasick>> {
    REGISTRY.read().ok().and_then(|r| r.matcher.clone())
}

/// `text` with every registered secret, or piece of one, replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Some(m) = matcher() else {
        return Cow::Borrowed(text);
    };
    if !m.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    m.replace_all_with(text, &mut out, |_, _, dst| {
        dst.push_str("***");
        true
    });
    Cow::Owned(out)
}

/// Redacts bytes that may not be UTF-8 (a log line).
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(m) = matcher() else {
        return Cow::Borrowed(bytes);
    };
    if !m.is_match(bytes) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    m.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
        dst.extend_from_slice(b"***");
        true
    });
    Cow::Owned(out)
}

/// A log writer (for `tracing_subscriber::fmt().with_writer`) that redacts each line before
/// it reaches stderr.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&redact_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

/// A log writer like [`RedactingStderr`] for stdout, where JSON logs go.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStdout;

impl Write for RedactingStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write_all(&redact_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStdout {
    type Writer = RedactingStdout;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStdout
    }
}

/// Installs a panic hook that prints the panic's message redacted (and never a key).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("proxygate: internal error{at}: {}\n", redact(&msg));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_split_in_two_is_caught_and_words_are_not() {
        let key = "sk-split-test-0123456789abcdefghijklmnopqrstuv";
        register_secrets([key.to_owned()]);
        for at in [3, 10, 20, 30, key.len() - 3] {
            let (a, b) = key.split_at(at);
            let (a_text, b_text) = (format!("here: {a}"), format!("{b} end"));
            let (ra, rb) = (redact(&a_text), redact(&b_text));
            let joined = format!("{ra}{rb}");
            assert!(!joined.contains(key), "split at {at}: {joined}");
            // Of the two halves, the longer one is gone.
            let longer = if a.len() >= b.len() { a } else { b };
            assert!(!joined.contains(longer), "split at {at}: {joined}");
        }
        let prose = "The quick brown fox jumps over the lazy dog; the split test results are 0123 and abcd.";
        assert_eq!(redact(prose), prose);
    }

    #[test]
    fn keys_and_pieces_of_them_are_replaced() {
        register_secrets([
            "gsk_redact_test_0123456789abcdef".to_owned(),
            "short".to_owned(),
        ]);
        assert_eq!(
            redact("Invalid API Key: gsk_redact_test_0123456789abcdef (check it)"),
            "Invalid API Key: *** (check it)"
        );
        let partial = redact("key gsk_redact_te...cdef is bad");
        assert!(!partial.contains("gsk_redact_te"), "{partial}");
        assert_eq!(redact("short words stay"), "short words stay");
        assert_eq!(
            &*redact_bytes(b"GET /v1?key=gsk_redact_test_0123456789abcdef HTTP/1.1"),
            b"GET /v1?key=*** HTTP/1.1"
        );
        assert_eq!(url_password("postgres://u:pw@h/db"), Some("pw"));
    }
}
