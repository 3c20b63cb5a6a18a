//! Parsing Canonical Form and its CRC-64-AVRO fingerprint, as the Avro spec defines them.
//!
//! apache-avro 0.21's `Schema::canonical_form` keeps `precision`, `scale` and `order`,
//! which the spec's [STRIP] rule drops, so its fingerprint of a schema with a decimal
//! differs from the one Java, Python or a schema registry compute, and a single-object
//! datum from such a producer would carry an "unknown" fingerprint. This module works on
//! the schema JSON and follows the spec's rules (tested against its published vectors).

use serde_json::{Map, Value as Json};

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// The CRC-64-AVRO "empty" value, which is also its polynomial.
const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut bit = 0;
        while bit < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            bit += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// CRC-64-AVRO (Rabin) of `bytes`.
pub(super) fn crc64_avro(bytes: &[u8]) -> u64 {
    bytes.iter().fold(EMPTY, |fp, &b| (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize])
}

/// The Parsing Canonical Form of a schema given as JSON.
pub(super) fn canonical_form(schema_json: &str) -> Result<String, String> {
    let json: Json = serde_json::from_str(schema_json).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = String::new();
    write_schema(&json, None, &mut out)?;
    Ok(out)
}

fn quote(text: &str) -> String {
    Json::String(text.to_string()).to_string()
}

/// [FULLNAMES]: a name without a dot takes the enclosing namespace.
fn fullname(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

fn write_schema(schema: &Json, namespace: Option<&str>, out: &mut String) -> Result<(), String> {
    match schema {
        Json::String(name) => {
            write_name(name, namespace, out);
            Ok(())
        }
        Json::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schema(branch, namespace, out)?;
            }
            out.push(']');
            Ok(())
        }
        Json::Object(map) => write_object(map, namespace, out),
        other => Err(format!("not a schema: {other}")),
    }
}

/// A primitive type name, or a reference to a named type by its full name.
fn write_name(name: &str, namespace: Option<&str>, out: &mut String) {
    if PRIMITIVES.contains(&name) {
        out.push_str(&quote(name));
    } else {
        out.push_str(&quote(&fullname(name, namespace)));
    }
}

fn get<'a>(map: &'a Map<String, Json>, key: &str) -> Result<&'a Json, String> {
    map.get(key).ok_or_else(|| format!("a schema object lacks `{key}`"))
}

fn write_object(map: &Map<String, Json>, namespace: Option<&str>, out: &mut String) -> Result<(), String> {
    let ty = match get(map, "type")? {
        Json::String(ty) => ty.as_str(),
        nested => return write_schema(nested, namespace, out),
    };
    match ty {
        "record" | "error" | "enum" | "fixed" => write_named(map, ty, namespace, out),
        "array" | "map" => {
            let key = if ty == "array" { "items" } else { "values" };
            out.push_str(&format!(r#"{{"type":{},{}:"#, quote(ty), quote(key)));
            write_schema(get(map, key)?, namespace, out)?;
            out.push('}');
            Ok(())
        }
        // [PRIMITIVES] and [STRIP]: `{"type": "long", "logicalType": ...}` is "long".
        name => {
            write_name(name, namespace, out);
            Ok(())
        }
    }
}

/// [ORDER]: name, type, then fields, symbols or size.
fn write_named(map: &Map<String, Json>, ty: &str, namespace: Option<&str>, out: &mut String) -> Result<(), String> {
    let name = get(map, "name")?.as_str().ok_or("`name` must be a string")?;
    let full = fullname(name, map.get("namespace").and_then(Json::as_str).or(namespace));
    let inner = full.rsplit_once('.').map(|(ns, _)| ns);
    out.push_str(&format!(r#"{{"name":{},"type":{}"#, quote(&full), quote(ty)));
    match ty {
        "enum" => out.push_str(&format!(r#","symbols":{}"#, get(map, "symbols")?)),
        "fixed" => out.push_str(&format!(r#","size":{}"#, size(get(map, "size")?)?)),
        _ => write_fields(get(map, "fields")?, inner, out)?,
    }
    out.push('}');
    Ok(())
}

fn write_fields(fields: &Json, namespace: Option<&str>, out: &mut String) -> Result<(), String> {
    let fields = fields.as_array().ok_or("`fields` must be an array")?;
    out.push_str(r#","fields":["#);
    for (i, field) in fields.iter().enumerate() {
        let field = field.as_object().ok_or("a field must be an object")?;
        let name = get(field, "name")?.as_str().ok_or("a field `name` must be a string")?;
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"name":{},"type":"#, quote(name)));
        write_schema(get(field, "type")?, namespace, out)?;
        out.push('}');
    }
    out.push(']');
    Ok(())
}

/// [INTEGERS]: no quotes, no leading zeros.
fn size(value: &Json) -> Result<u64, String> {
    let parsed = match value {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("bad fixed size {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_the_empty_input_is_the_empty_value() {
        assert_eq!(crc64_avro(b""), EMPTY);
        assert_eq!(crc64_avro(br#""null""#), 7195948357588979594);
    }

    #[test]
    fn logical_types_reduce_to_their_underlying_type() {
        let decimal = r#"{"type": "bytes", "logicalType": "decimal", "precision": 28, "scale": 10}"#;
        assert_eq!(canonical_form(decimal).unwrap(), r#""bytes""#);
        let ts = r#"{"type": "long", "logicalType": "timestamp-micros"}"#;
        assert_eq!(canonical_form(ts).unwrap(), r#""long""#);
    }

    #[test]
    fn nested_names_take_the_enclosing_namespace() {
        let schema = r#"{"type":"record","name":"R","namespace":"a.b","fields":[
            {"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}},
            {"name":"again","type":"E"},
            {"name":"other","type":{"type":"fixed","name":"c.F","size":"04"}}]}"#;
        assert_eq!(
            canonical_form(schema).unwrap(),
            r#"{"name":"a.b.R","type":"record","fields":[{"name":"e","type":{"name":"a.b.E","type":"enum","symbols":["X"]}},{"name":"again","type":"a.b.E"},{"name":"other","type":{"name":"c.F","type":"fixed","size":4}}]}"#
        );
    }
}
