//! `jubectl txn`: a transaction written as JSON, read from a file or
//! stdin, turned into the engine's own [`Txn`]; its results printed.
//!
//! ```json
//! {"keys": [{"id": 0, "mode": "RW", "key": "alice"},
//!           {"id": 1, "mode": "RW", "key": "bob"}],
//!  "ops": [{"op": "GET", "key": 0},
//!          {"op": "ASSERT_REVISION_EQ", "key": 1, "revision": 12},
//!          {"op": "ADD", "key": 0, "delta": -10},
//!          {"op": "ADD", "key": 1, "delta": 10}],
//!  "durability": "sync"}
//! ```
//!
//! Ops: `GET`, `SET` (`value`, optional `type` string|bytes|int and
//! `ttl_ms`), `DEL`, `ADD` (`delta`), `EXPIRE` (`ttl_ms`), `PERSIST`, `TTL`,
//! `ASSERT_EXISTS`, `ASSERT_NOT_EXISTS`, `ASSERT_TYPE` (`type`: missing,
//! string, bytes or int), `ASSERT_INT_EQ` (`value`), `ASSERT_BYTES_HASH_EQ`
//! and `ASSERT_STRING_HASH_EQ` (`hash`: 64 hex digits), `ASSERT_REVISION_EQ`
//! (`revision`). Anything else is a usage error naming the op's index.

use jubilant_core::db::{Durability, Value};
use jubilant_core::record::ValueType;
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnOutcome};
use serde_json::{Value as Json, json};

use crate::text::{TypeName, parse_value, value_json};

fn field<'a>(object: &'a Json, name: &str, at: &str) -> Result<&'a Json, String> {
    object
        .get(name)
        .ok_or_else(|| format!("{at}: missing \"{name}\""))
}

fn u64_field(object: &Json, name: &str, at: &str) -> Result<u64, String> {
    field(object, name, at)?
        .as_u64()
        .ok_or_else(|| format!("{at}: \"{name}\" must be a non-negative integer"))
}

fn i64_field(object: &Json, name: &str, at: &str) -> Result<i64, String> {
    field(object, name, at)?
        .as_i64()
        .ok_or_else(|| format!("{at}: \"{name}\" must be an integer"))
}

fn type_name(object: &Json, at: &str) -> Result<Option<TypeName>, String> {
    match object.get("type").and_then(Json::as_str) {
        None => Ok(None),
        Some("string") => Ok(Some(TypeName::String)),
        Some("bytes") => Ok(Some(TypeName::Bytes)),
        Some("int") => Ok(Some(TypeName::Int)),
        Some(other) => Err(format!("{at}: unknown type {other:?}")),
    }
}

fn value(object: &Json, at: &str) -> Result<Value, String> {
    let raw = field(object, "value", at)?;
    match (raw, type_name(object, at)?) {
        (Json::Number(n), None | Some(TypeName::Int)) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("{at}: {n} is not a 64-bit integer")),
        (Json::String(text), kind) => {
            parse_value(text, kind.unwrap_or(TypeName::String)).map_err(|e| format!("{at}: {e}"))
        }
        (other, _) => Err(format!("{at}: unusable value {other}")),
    }
}

fn hash(object: &Json, at: &str) -> Result<[u8; 32], String> {
    let text = field(object, "hash", at)?
        .as_str()
        .ok_or_else(|| format!("{at}: \"hash\" must be a hex string"))?;
    match parse_value(text, TypeName::Bytes) {
        Ok(Value::Bytes(bytes)) => <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| format!("{at}: a BLAKE3 hash is 32 bytes (64 hex digits)")),
        _ => Err(format!("{at}: \"hash\" must be 64 hex digits")),
    }
}

/// Parses the JSON text of a transaction.
pub(crate) fn parse(text: &str) -> Result<Txn, String> {
    let root: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut keys = Vec::new();
    for (index, decl) in field(&root, "keys", "the transaction")?
        .as_array()
        .ok_or("\"keys\" must be an array")?
        .iter()
        .enumerate()
    {
        let at = format!("key {index}");
        let id = u32::try_from(u64_field(decl, "id", &at)?)
            .map_err(|_| format!("{at}: the id must fit 32 bits"))?;
        let mode = match field(decl, "mode", &at)?.as_str() {
            Some("R") => Mode::R,
            Some("RW") => Mode::RW,
            _ => return Err(format!("{at}: \"mode\" must be \"R\" or \"RW\"")),
        };
        // A key is text ("key") or any bytes in hexadecimal ("key_hex").
        let key = match (decl.get("key"), decl.get("key_hex")) {
            (Some(text), None) => text
                .as_str()
                .ok_or_else(|| format!("{at}: \"key\" must be a string"))?
                .as_bytes()
                .to_vec(),
            (None, Some(hex)) => {
                hex.as_str()
                    .and_then(crate::text::parse_hex)
                    .ok_or_else(|| {
                        format!("{at}: \"key_hex\" must be a string of hexadecimal bytes")
                    })?
            }
            _ => return Err(format!("{at}: give exactly one of \"key\" and \"key_hex\"")),
        };
        keys.push((id, mode, key));
    }
    let mut ops = Vec::new();
    for (index, op) in field(&root, "ops", "the transaction")?
        .as_array()
        .ok_or("\"ops\" must be an array")?
        .iter()
        .enumerate()
    {
        let at = format!("op {index}");
        let key = u32::try_from(u64_field(op, "key", &at)?)
            .map_err(|_| format!("{at}: the key id must fit 32 bits"))?;
        let name = field(op, "op", &at)?.as_str().unwrap_or_default();
        ops.push(match name {
            "GET" => Op::Get(key),
            "SET" => Op::Set(
                key,
                value(op, &at)?,
                op.get("ttl_ms")
                    .map(|_| u64_field(op, "ttl_ms", &at))
                    .transpose()?,
            ),
            "DEL" => Op::Del(key),
            "ADD" => Op::Add(key, i64_field(op, "delta", &at)?),
            "EXPIRE" => Op::Expire(key, u64_field(op, "ttl_ms", &at)?),
            "PERSIST" => Op::Persist(key),
            "TTL" => Op::Ttl(key),
            "ASSERT_EXISTS" => Op::AssertExists(key),
            "ASSERT_NOT_EXISTS" => Op::AssertNotExists(key),
            "ASSERT_TYPE" => Op::AssertType(
                key,
                match op.get("type").and_then(Json::as_str) {
                    Some("missing") => None,
                    Some("string") => Some(ValueType::String),
                    Some("bytes") => Some(ValueType::Bytes),
                    Some("int") => Some(ValueType::Int64),
                    _ => {
                        return Err(format!(
                            "{at}: \"type\" must be missing, string, bytes or int"
                        ));
                    }
                },
            ),
            "ASSERT_INT_EQ" => Op::AssertIntEq(key, i64_field(op, "value", &at)?),
            "ASSERT_BYTES_HASH_EQ" => Op::AssertBytesHashEq(key, hash(op, &at)?),
            "ASSERT_STRING_HASH_EQ" => Op::AssertStringHashEq(key, hash(op, &at)?),
            "ASSERT_REVISION_EQ" => Op::AssertRevisionEq(key, u64_field(op, "revision", &at)?),
            other => return Err(format!("{at}: unknown op {other:?}")),
        });
    }
    let mut txn = Txn::from_parts(keys, ops);
    match root.get("durability").and_then(Json::as_str) {
        None => {}
        Some("sync") => {
            txn.durability(Durability::Sync);
        }
        Some("async") => {
            txn.durability(Durability::Async);
        }
        Some(other) => return Err(format!("unknown durability {other:?}")),
    }
    Ok(txn)
}

fn result_json(result: &OpResult) -> Json {
    match result {
        OpResult::Get(Some((value, revision))) => {
            let mut object = value_json(value);
            object["revision"] = json!(revision);
            object
        }
        OpResult::Get(None) => json!({"missing": true}),
        OpResult::Set => json!({"set": true}),
        OpResult::Del(existed) => json!({"deleted": existed}),
        OpResult::Add(n) => json!({"value": n}),
        OpResult::Expire(existed) => json!({"existed": existed}),
        OpResult::Persist(had) => json!({"had_ttl": had}),
        OpResult::Ttl(Ttl::Missing) => json!({"missing": true}),
        OpResult::Ttl(Ttl::NoExpiry) => json!({"ttl_ms": null}),
        OpResult::Ttl(Ttl::Ms(ms)) => json!({"ttl_ms": ms}),
        OpResult::Held => json!({"held": true}),
    }
}

/// The outcome as printed: text lines, and one JSON object.
pub(crate) fn render(outcome: &TxnOutcome) -> (String, Json) {
    let mut lines = vec![if outcome.read_only {
        format!("read-only at LSN {}", outcome.lsn)
    } else {
        format!("committed at LSN {}", outcome.lsn)
    }];
    for (index, result) in outcome.results.iter().enumerate() {
        lines.push(format!("op {index}: {}", result_json(result)));
    }
    let json = json!({
        "lsn": outcome.lsn,
        "read_only": outcome.read_only,
        "results": outcome.results.iter().map(result_json).collect::<Vec<_>>(),
    });
    (lines.join("\n"), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_and_bad_input_names_the_op() {
        let txn = parse(
            r#"{"keys": [{"id": 0, "mode": "RW", "key": "alice"},
                         {"id": 1, "mode": "RW", "key": "bob"}],
                "ops": [{"op": "GET", "key": 0},
                        {"op": "ASSERT_REVISION_EQ", "key": 1, "revision": 12},
                        {"op": "ADD", "key": 0, "delta": -10},
                        {"op": "SET", "key": 1, "value": "hi", "ttl_ms": 5}],
                "durability": "sync"}"#,
        )
        .expect("valid");
        assert_eq!(txn.ops().len(), 4);
        assert_eq!(txn.ops()[3], Op::Set(1, Value::from("hi"), Some(5)));
        assert_eq!(txn.durability_class(), Some(Durability::Sync));
        let error = parse(r#"{"keys": [], "ops": [{"op": "FLY", "key": 0}]}"#).expect_err("op");
        assert!(error.contains("op 0") && error.contains("FLY"), "{error}");
        assert!(parse("not json").is_err());
    }
}
