//! Avro binary encoding of a value already resolved to its schema.
//!
//! Unlike `apache_avro::to_avro_datum` it writes map entries in key order (apache-avro
//! keeps maps in a `HashMap`, whose order changes from one process to the next) and
//! every decimal in exactly [`DECIMAL_BYTES`] bytes, so one event always gives the same
//! bytes.

use apache_avro::schema::{RecordField, Schema};
use apache_avro::types::Value;
use std::collections::HashMap;

/// Bytes of a decimal(28, 10): 2^95 > 10^28, and apache-avro's resolution wants a
/// length that can hold the declared precision.
pub(super) const DECIMAL_BYTES: usize = 12;

pub(super) fn write(value: &Value, schema: &Schema, out: &mut Vec<u8>) -> Result<(), String> {
    match (value, schema) {
        (Value::Null, Schema::Null) => {}
        (Value::Boolean(b), Schema::Boolean) => out.push(u8::from(*b)),
        (Value::Int(n), Schema::Int) => long(i64::from(*n), out),
        (Value::Long(n), Schema::Long) => long(*n, out),
        (Value::TimestampMicros(n), Schema::TimestampMicros) => long(*n, out),
        (Value::String(s), Schema::String) => bytes(s.as_bytes(), out),
        (Value::Bytes(b), Schema::Bytes) => bytes(b, out),
        (Value::Decimal(d), Schema::Decimal(ds)) if matches!(*ds.inner, Schema::Bytes) => {
            bytes(&decimal_bytes(d)?, out)
        }
        (Value::Enum(i, _), Schema::Enum(_)) => long(i64::from(*i), out),
        (Value::Union(i, inner), Schema::Union(u)) => {
            let variant = u.variants().get(*i as usize).ok_or(format!("no union branch {i}"))?;
            long(i64::from(*i), out);
            write(inner, variant, out)?;
        }
        (Value::Array(items), Schema::Array(a)) => {
            if !items.is_empty() {
                long(items.len() as i64, out);
                items.iter().try_for_each(|item| write(item, &a.items, out))?;
            }
            out.push(0);
        }
        (Value::Map(entries), Schema::Map(m)) => write_map(entries, &m.types, out)?,
        (Value::Record(values), Schema::Record(r)) => write_record(values, &r.fields, out)?,
        (value, schema) => return Err(format!("cannot write {value:?} as {schema:?}")),
    }
    Ok(())
}

fn write_map(entries: &HashMap<String, Value>, values: &Schema, out: &mut Vec<u8>) -> Result<(), String> {
    if !entries.is_empty() {
        let mut sorted: Vec<_> = entries.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        long(sorted.len() as i64, out);
        for (key, value) in sorted {
            bytes(key.as_bytes(), out);
            write(value, values, out)?;
        }
    }
    out.push(0);
    Ok(())
}

fn write_record(values: &[(String, Value)], fields: &[RecordField], out: &mut Vec<u8>) -> Result<(), String> {
    if values.len() != fields.len() {
        return Err(format!("{} values for {} fields", values.len(), fields.len()));
    }
    for ((name, value), field) in values.iter().zip(fields) {
        if *name != field.name {
            return Err(format!("value `{name}` where field `{}` belongs", field.name));
        }
        write(value, &field.schema, out).map_err(|e| format!("field `{name}`: {e}"))?;
    }
    Ok(())
}

/// Zig-zag variable-length encoding of a long (also ints, lengths and indexes).
fn long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// The two's complement of a decimal's unscaled value in exactly `DECIMAL_BYTES` bytes.
fn decimal_bytes(d: &apache_avro::Decimal) -> Result<Vec<u8>, String> {
    let raw = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xFF } else { 0 };
    if raw.len() <= DECIMAL_BYTES {
        let mut out = vec![fill; DECIMAL_BYTES - raw.len()];
        out.extend_from_slice(&raw);
        return Ok(out);
    }
    let (head, tail) = raw.split_at(raw.len() - DECIMAL_BYTES);
    if head.iter().all(|&b| b == fill) && (tail[0] & 0x80 != 0) == negative {
        Ok(tail.to_vec())
    } else {
        Err(format!("decimal needs more than {DECIMAL_BYTES} bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let encode = |n| {
            let mut out = Vec::new();
            long(n, &mut out);
            out
        };
        assert_eq!(encode(0), [0x00]);
        assert_eq!(encode(-1), [0x01]);
        assert_eq!(encode(1), [0x02]);
        assert_eq!(encode(-64), [0x7f]);
        assert_eq!(encode(64), [0x80, 0x01]);
        assert_eq!(encode(i64::MIN), [0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>());
    }

    #[test]
    fn decimals_take_twelve_bytes_sign_extended() {
        let minus_one = apache_avro::Decimal::from([0xFFu8]);
        assert_eq!(decimal_bytes(&minus_one).unwrap(), vec![0xFF; 12]);
        let wide = apache_avro::Decimal::from(300i128.to_be_bytes());
        let mut expected = vec![0u8; 10];
        expected.extend([0x01, 0x2C]);
        assert_eq!(decimal_bytes(&wide).unwrap(), expected);
        let too_big = apache_avro::Decimal::from((1i128 << 100).to_be_bytes());
        assert!(decimal_bytes(&too_big).unwrap_err().contains("more than 12 bytes"));
    }
}
