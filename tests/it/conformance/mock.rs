//! The built-in mock provider: it answers itself, so only the scenarios about the gateway's own
//! answer apply.

use super::{Case, Expect, Fixture, conformance};
use crate::support::Reply;

fn fixture() -> Fixture {
    Fixture {
        provider: "mock",
        model: "mock/echo",
        env: |_| Vec::new(),
        expect: Expect::OwnText,
        // No upstream is called: the fake's reply is never used.
        plain: || Reply::Hang,
        stream: || Reply::Hang,
        tool_call: Case::DoesNotApply("the mock answers with text only, never a tool call"),
        tool_call_stream: Case::DoesNotApply("the mock answers with text only, never a tool call"),
        error: Case::DoesNotApply("the mock has no upstream whose error envelope to translate"),
        rate_limit: Case::DoesNotApply("the mock has no upstream that rate-limits"),
    }
}

conformance!(fixture);
