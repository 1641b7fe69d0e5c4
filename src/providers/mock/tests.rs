use super::*;
use crate::types::{Message, Role};
use tower::ServiceExt;

fn req(text: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        model: "echo".into(),
        messages: vec![Message::text(Role::User, text)],
        stream: Some(stream),
        ..Default::default()
    }
}

#[tokio::test]
async fn streamed_and_whole_replies_are_identical() {
    let mock = Mock::default();
    let whole = match mock
        .clone()
        .oneshot(req("hello there", false))
        .await
        .unwrap()
        .body
    {
        crate::types::ReplyBody::Complete(r) => r.choices[0].message.content.clone().unwrap(),
        _ => panic!("expected a complete reply"),
    };
    let crate::types::ReplyBody::Stream(mut s) =
        mock.oneshot(req("hello there", true)).await.unwrap().body
    else {
        panic!("expected a stream")
    };
    let mut text = String::new();
    let mut usage = None;
    while let Some(c) = std::future::poll_fn(|cx| s.as_mut().poll_next(cx)).await {
        let c = c.unwrap();
        usage = usage.or(c.usage.clone());
        for ch in c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
        }
    }
    assert_eq!(text, whole);
    assert!(whole.contains("hello there"));
    assert!(usage.unwrap().completion_tokens > 0);
    assert_ne!(reply_text(&req("a", false)), reply_text(&req("b", false)));
}

#[tokio::test]
async fn failure_rate_one_always_fails() {
    let mock = Mock {
        failure_rate: 1.0,
        ..Mock::default()
    };
    let err = mock.oneshot(req("x", false)).await.unwrap_err();
    assert!(err.is_retryable());
}
