//! OpenAI's Responses API (`/v1/responses`), as OpenAI's API reference describes it: the
//! `CreateResponse` request, the items a conversation is made of (the same shapes in `input`
//! and `output`), the `Response` object and the streaming events.
//!
//! Unknown request fields are kept in `extra` maps so nothing a client sends is lost; input
//! items of a type the gateway does not model are a clear error naming the type.

mod events;
mod items;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use events::*;
pub use items::*;
pub use request::*;
pub use response::*;
