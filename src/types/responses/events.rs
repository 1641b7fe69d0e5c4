//! The events of a response stream.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ContentPart, Item, ResponseObject, SummaryText};

/// One streaming event: its `type` and payload, and its place in the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// 0 for the first event of a stream, then one more for each.
    pub sequence_number: u64,
}

impl StreamEvent {
    /// The event's `type`.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// The events of a response stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The response exists.
    #[serde(rename = "response.created")]
    Created {
        /// The response so far.
        response: Box<ResponseObject>,
    },
    /// The model is working.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// The response so far.
        response: Box<ResponseObject>,
    },
    /// An output item begins.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// Its place in `output`.
        output_index: u32,
        /// The item so far.
        item: Item,
    },
    /// A content part of a message begins.
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The part so far.
        part: ContentPart,
    },
    /// A piece of text.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The new text.
        delta: String,
        /// Log probabilities (empty unless asked for).
        logprobs: Vec<Value>,
    },
    /// The text of a part is complete.
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The whole text.
        text: String,
        /// Log probabilities (empty unless asked for).
        logprobs: Vec<Value>,
    },
    /// A content part is complete.
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        /// The message.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `content`.
        content_index: u32,
        /// The whole part.
        part: ContentPart,
    },
    /// A piece of a function call's arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The function call item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The new piece of the JSON string.
        delta: String,
    },
    /// The arguments are complete.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The function call item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The function.
        name: String,
        /// The whole JSON string.
        arguments: String,
    },
    /// A summary part of a reasoning item begins.
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The part so far.
        part: SummaryText,
    },
    /// A piece of reasoning summary.
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The new text.
        delta: String,
    },
    /// A summary text is complete.
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The whole text.
        text: String,
    },
    /// A summary part is complete.
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        /// The reasoning item.
        item_id: String,
        /// Its place in `output`.
        output_index: u32,
        /// The part's place in `summary`.
        summary_index: u32,
        /// The whole part.
        part: SummaryText,
    },
    /// An output item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// Its place in `output`.
        output_index: u32,
        /// The whole item.
        item: Item,
    },
    /// The response is complete, with usage.
    #[serde(rename = "response.completed")]
    Completed {
        /// The whole response.
        response: Box<ResponseObject>,
    },
    /// The response stopped early (output cap).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The response as far as it got.
        response: Box<ResponseObject>,
    },
    /// The response failed after it began.
    #[serde(rename = "response.failed")]
    Failed {
        /// The response with its `error`.
        response: Box<ResponseObject>,
    },
}

impl EventKind {
    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "response.created",
            Self::InProgress { .. } => "response.in_progress",
            Self::OutputItemAdded { .. } => "response.output_item.added",
            Self::ContentPartAdded { .. } => "response.content_part.added",
            Self::OutputTextDelta { .. } => "response.output_text.delta",
            Self::OutputTextDone { .. } => "response.output_text.done",
            Self::ContentPartDone { .. } => "response.content_part.done",
            Self::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Self::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            Self::ReasoningSummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            Self::ReasoningSummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            Self::ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            Self::ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            Self::OutputItemDone { .. } => "response.output_item.done",
            Self::Completed { .. } => "response.completed",
            Self::Incomplete { .. } => "response.incomplete",
            Self::Failed { .. } => "response.failed",
        }
    }
}
