//! JSON written straight into a buffer by the hot encoders (the usage journal's line, the chat
//! completion), which know their fields: names as literals, each value through `serde_json` on
//! its own, the same bytes the serializer writes for the whole value without its generic path.

use serde::Serialize;

/// `prefix` (the punctuation and the field's name), then `value` as `serde_json` writes it.
pub(crate) fn field(
    out: &mut Vec<u8>,
    prefix: &[u8],
    value: &(impl Serialize + ?Sized),
) -> serde_json::Result<()> {
    out.extend_from_slice(prefix);
    serde_json::to_writer(&mut *out, value)
}
