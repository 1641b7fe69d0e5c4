//! The client request decoder under arbitrary input: random bytes and mutations of real wire
//! samples (the adapters' fuzz seeds) give a request or a 400 in the error envelope, never a
//! panic. Same fixed case count and RNG seed as the adapters' fuzz tests.

use http::StatusCode;
use proptest::prelude::*;

use crate::providers::fuzz::{assert_enveloped, bytes, config};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_request_decoder_gives_a_request_or_a_400(body in bytes()) {
        match super::decode::chat_request(&body) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{:?}", e);
                assert_enveloped(&e);
            }
        }
    }
}
