//! HTTP `application/avro` bodies: an Object Container File, or single-object encoded
//! events one after the other.
//!
//! Each datum becomes one [`Decoded`] item, validated like a JSON item. When the bytes
//! cannot be split any further (bad marker, unknown fingerprint, truncated or corrupt
//! datum, bad block), the list ends with one rejection naming the item index and the
//! byte offset where reading stopped; its `raw` is the hex of the unread rest.

use std::io::{Cursor, Read};

use apache_avro::types::Value;
use apache_avro::Schema;

use super::{hex, value, Codec, Writer, MAX_INFLATED_BYTES};
use crate::json::{self, Decoded};
use crate::types::{Event, EventBody};
use crate::{validate, Rejection, Timestamp};

/// The first bytes of an Avro Object Container File.
pub const OCF_MAGIC: &[u8; 4] = b"Obj\x01";
const SYNC_LEN: usize = 16;

pub(super) fn decode_body(codec: &Codec, body: &[u8]) -> Result<Vec<Decoded>, Rejection> {
    if body.starts_with(OCF_MAGIC) {
        container(codec, body)
    } else {
        Ok(single_objects(codec, body))
    }
}

fn single_objects(codec: &Codec, body: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        match codec.split_single_object(&body[pos..]) {
            Ok((writer, value, used)) => {
                out.push(item(out.len(), codec.type_name_of(writer), &value));
                pos += used;
            }
            Err(e) => {
                out.push(stuck(out.len(), body, pos, &e.to_string()));
                break;
            }
        }
    }
    out
}

/// One decoded datum: the event if it converts, is an input event and validates.
fn item(index: usize, type_name: &str, value: &Value) -> Decoded {
    match value::event_from_value(type_name, value) {
        Ok(event) => {
            let raw = json::encode(&event);
            let result = admit(&event).map(|()| event).map_err(|r| r.at(index));
            Decoded { index, raw, result }
        }
        Err(e) => {
            let mut raw = render(value);
            if let serde_json::Value::Object(fields) = &mut raw {
                fields.insert("type".to_string(), type_name.into());
            }
            Decoded { index, raw: raw.to_string(), result: Err(e.to_rejection().at(index)) }
        }
    }
}

fn admit(event: &Event) -> Result<(), Rejection> {
    if let EventBody::PriceBatch(_) = event.body {
        return Err(Rejection::field("type", "`PriceBatch` is internal; send `MarketTick` events"));
    }
    validate(event)
}

/// The final item of a body that cannot be split further.
fn stuck(index: usize, body: &[u8], offset: usize, reason: &str) -> Decoded {
    let rejection = Rejection::body(format!("cannot read the body from byte {offset} on: {reason}"));
    Decoded { index, raw: hex(&body[offset.min(body.len())..]), result: Err(rejection.at(index)) }
}

/// A JSON rendering of a datum that did not convert to an event (for the dead letters).
fn render(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Int(n) => J::from(*n),
        Value::Long(n) => J::from(*n),
        Value::TimestampMicros(n) => J::String(Timestamp::from_micros(*n).to_rfc3339()),
        Value::String(s) | Value::Enum(_, s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(hex(b)),
        Value::Decimal(d) => J::String(value::decimal_text(d)),
        Value::Union(_, inner) => render(inner),
        Value::Array(items) => J::Array(items.iter().map(render).collect()),
        Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.clone(), render(v))).collect()),
        Value::Record(fields) => J::Object(fields.iter().map(|(k, v)| (k.clone(), render(v))).collect()),
        other => J::String(format!("{other:?}")),
    }
}

/// The block codecs of the spec that this reader supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockCodec {
    Null,
    Deflate,
}

struct Header {
    schema_json: String,
    codec: BlockCodec,
    sync: [u8; SYNC_LEN],
}

fn container(codec: &Codec, body: &[u8]) -> Result<Vec<Decoded>, Rejection> {
    let mut cursor = Cursor::new(body);
    let header =
        read_header(&mut cursor).map_err(|e| Rejection::body(format!("malformed Avro container header: {e}")))?;
    let (_, writer) = codec
        .writer_from_json(&header.schema_json)
        .map_err(|e| Rejection::body(format!("Avro container schema refused: {e}")))?;
    let mut out = Vec::new();
    let mut inflate_budget = MAX_INFLATED_BYTES;
    while (cursor.position() as usize) < body.len() {
        let block = Block { codec, writer: &writer, header: &header, inflate_budget: &mut inflate_budget };
        if let Err((offset, reason)) = block.read(&mut cursor, &mut out) {
            out.push(stuck(out.len(), body, offset, &reason));
            break;
        }
    }
    Ok(out)
}

fn read_header(cursor: &mut Cursor<&[u8]>) -> Result<Header, String> {
    cursor.set_position(OCF_MAGIC.len() as u64);
    let meta = match apache_avro::from_avro_datum(&Schema::map(Schema::Bytes), cursor, None) {
        Ok(Value::Map(meta)) => meta,
        Ok(other) => return Err(format!("metadata is not a map: {other:?}")),
        Err(e) => return Err(format!("unreadable metadata: {e}")),
    };
    let text = |key: &str| match meta.get(key) {
        Some(Value::Bytes(b)) => String::from_utf8(b.clone()).ok(),
        _ => None,
    };
    let schema_json = text("avro.schema").ok_or("no `avro.schema` in the metadata")?;
    let codec = match text("avro.codec").as_deref() {
        None | Some("null") => BlockCodec::Null,
        Some("deflate") => BlockCodec::Deflate,
        Some(other) => return Err(format!("unsupported codec `{other}` (null and deflate are)")),
    };
    let sync = read_sync(cursor).ok_or("truncated sync marker")?;
    Ok(Header { schema_json, codec, sync })
}

fn read_sync(cursor: &mut Cursor<&[u8]>) -> Option<[u8; SYNC_LEN]> {
    let mut sync = [0u8; SYNC_LEN];
    cursor.read_exact(&mut sync).ok().map(|()| sync)
}

fn read_long(cursor: &mut Cursor<&[u8]>) -> Result<i64, String> {
    match apache_avro::from_avro_datum(&Schema::Long, cursor, None) {
        Ok(Value::Long(n)) => Ok(n),
        Ok(other) => Err(format!("expected a long, got {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// What reading one block needs.
struct Block<'a> {
    codec: &'a Codec,
    writer: &'a Writer,
    header: &'a Header,
    /// Bytes the rest of the body may still inflate to.
    inflate_budget: &'a mut usize,
}

impl Block<'_> {
    /// Reads the block at the cursor and pushes its items; on failure, the byte offset
    /// where reading stopped and why.
    fn read(mut self, cursor: &mut Cursor<&[u8]>, out: &mut Vec<Decoded>) -> Result<(), (usize, String)> {
        let start = cursor.position() as usize;
        let (count, data_start, data) = read_frame(cursor, self.header).map_err(|e| (start, e))?;
        let data = self.inflate(data).map_err(|e| (start, e))?;
        // Offsets inside a compressed block mean nothing to the sender: report the block's.
        let exact = self.header.codec == BlockCodec::Null;
        let at = |items: &Cursor<&[u8]>| {
            if exact {
                data_start + items.position() as usize
            } else {
                start
            }
        };
        let type_name = self.codec.type_name_of(self.writer);
        let mut items = Cursor::new(data.as_slice());
        for _ in 0..count {
            let offset = at(&items);
            let value = self.codec.read_value(self.writer, &mut items).map_err(|e| (offset, e.to_string()))?;
            out.push(item(out.len(), type_name, &value));
        }
        let extra = data.len() - items.position() as usize;
        if extra > 0 {
            return Err((at(&items), format!("the block has {extra} bytes after its {count} items")));
        }
        Ok(())
    }

    fn inflate(&mut self, data: Vec<u8>) -> Result<Vec<u8>, String> {
        if self.header.codec == BlockCodec::Null {
            return Ok(data);
        }
        let inflated =
            miniz_oxide::inflate::decompress_to_vec_with_limit(&data, *self.inflate_budget).map_err(|e| {
                match e.status {
                    miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                        format!("the container inflates to more than {MAX_INFLATED_BYTES} bytes")
                    }
                    status => format!("cannot inflate the block: {status:?}"),
                }
            })?;
        *self.inflate_budget -= inflated.len();
        Ok(inflated)
    }
}

/// The item count, data offset and (still compressed) data of the block at the cursor,
/// which is left after the block's sync marker.
fn read_frame(cursor: &mut Cursor<&[u8]>, header: &Header) -> Result<(u64, usize, Vec<u8>), String> {
    let count = read_long(cursor).map_err(|e| format!("bad block count: {e}"))?;
    let size = read_long(cursor).map_err(|e| format!("bad block size: {e}"))?;
    let (count, size) = match (u64::try_from(count), usize::try_from(size)) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return Err(format!("negative block count {count} or size {size}")),
    };
    let body = *cursor.get_ref();
    let data_start = cursor.position() as usize;
    let data_end = data_start
        .checked_add(size)
        .filter(|end| end.saturating_add(SYNC_LEN) <= body.len())
        .ok_or(format!("a block of {size} bytes runs past the end of the body"))?;
    cursor.set_position(data_end as u64);
    if read_sync(cursor) != Some(header.sync) {
        return Err("the block's sync marker differs from the header's".to_string());
    }
    Ok((count, data_start, body[data_start..data_end].to_vec()))
}
