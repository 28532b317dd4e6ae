//! `jubectl txn`: a transaction written as JSON, read from a file or
//! stdin, turned into the engine's own [`Txn`]; its results printed.
//!
//! The format is [`FORMAT`] (also `jubectl txn --help`): parsed with
//! serde, every object refusing fields it does not name.

use jubilant_core::db::{Durability, Value};
use jubilant_core::record::ValueType;
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnOutcome};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::text::{TypeName, parse_value, value_json};

/// The format, for `jubectl txn --help`.
pub(crate) const FORMAT: &str = r#"The transaction is one JSON object; a field this format does not name is an
error (with its line and column), never ignored:

  {"keys": [{"id": 0, "mode": "RW", "key": "alice"},
            {"id": 1, "mode": "R", "key_hex": "626f62"}],
   "ops": [{"op": "GET", "key": 0},
           {"op": "ASSERT_REVISION_EQ", "key": 1, "revision": 12},
           {"op": "SET", "key": 0, "value": "hi", "ttl_ms": 5000}],
   "durability": "sync"}

keys: every key the ops use, declared once: "id" (a number the ops refer
  to), "mode" ("R" or "RW"), and "key" (text) or "key_hex" (any bytes).
ops, each {"op": NAME, "key": ID, ...}:
  GET; DEL; PERSIST; TTL; ASSERT_EXISTS; ASSERT_NOT_EXISTS
  SET                "value" (a string, or a number for an int), optional
                     "type" (string|bytes|int; bytes are hex) and "ttl_ms"
  ADD                "delta" (a signed integer; a missing key counts as 0)
  EXPIRE             "ttl_ms"
  ASSERT_TYPE        "type": missing|string|bytes|int
  ASSERT_INT_EQ      "value" (an integer)
  ASSERT_BYTES_HASH_EQ, ASSERT_STRING_HASH_EQ
                     "hash": the value's BLAKE3 hash, 64 hex digits
  ASSERT_REVISION_EQ "revision"
durability: "sync" or "async" (optional; the server's default otherwise).

A failed assertion aborts the whole transaction (exit 4, nothing written)."#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnJson {
    keys: Vec<KeyJson>,
    ops: Vec<OpJson>,
    #[serde(default)]
    durability: Option<DurabilityJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyJson {
    id: u32,
    mode: ModeJson,
    /// The key as text.
    #[serde(default)]
    key: Option<String>,
    /// The key as hexadecimal bytes.
    #[serde(default)]
    key_hex: Option<String>,
}

#[derive(Deserialize)]
enum ModeJson {
    R,
    RW,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum DurabilityJson {
    Sync,
    Async,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TypeJson {
    String,
    Bytes,
    Int,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum AssertTypeJson {
    Missing,
    String,
    Bytes,
    Int,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
enum OpJson {
    Get {
        key: u32,
    },
    Set {
        key: u32,
        value: Json,
        #[serde(rename = "type", default)]
        type_name: Option<TypeJson>,
        #[serde(default)]
        ttl_ms: Option<u64>,
    },
    Del {
        key: u32,
    },
    Add {
        key: u32,
        delta: i64,
    },
    Expire {
        key: u32,
        ttl_ms: u64,
    },
    Persist {
        key: u32,
    },
    Ttl {
        key: u32,
    },
    AssertExists {
        key: u32,
    },
    AssertNotExists {
        key: u32,
    },
    AssertType {
        key: u32,
        #[serde(rename = "type")]
        type_name: AssertTypeJson,
    },
    AssertIntEq {
        key: u32,
        value: i64,
    },
    AssertBytesHashEq {
        key: u32,
        hash: String,
    },
    AssertStringHashEq {
        key: u32,
        hash: String,
    },
    AssertRevisionEq {
        key: u32,
        revision: u64,
    },
}

fn value(raw: &Json, type_name: Option<TypeJson>, at: &str) -> Result<Value, String> {
    let kind = type_name.map(|kind| match kind {
        TypeJson::String => TypeName::String,
        TypeJson::Bytes => TypeName::Bytes,
        TypeJson::Int => TypeName::Int,
    });
    match (raw, kind) {
        (Json::Number(n), None | Some(TypeName::Int)) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("{at}: {n} is not a 64-bit integer")),
        (Json::String(text), kind) => {
            parse_value(text, kind.unwrap_or(TypeName::String)).map_err(|e| format!("{at}: {e}"))
        }
        (other, _) => Err(format!(
            "{at}: \"value\" must be a string, or a number for an int; not {other}"
        )),
    }
}

fn hash(text: &str, at: &str) -> Result<[u8; 32], String> {
    match parse_value(text, TypeName::Bytes) {
        Ok(Value::Bytes(bytes)) => <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| format!("{at}: a BLAKE3 hash is 32 bytes (64 hex digits)")),
        _ => Err(format!("{at}: \"hash\" must be 64 hex digits")),
    }
}

/// Parses the JSON text of a transaction ([`FORMAT`]). A syntax error, a
/// missing or misspelled field, or a value of the wrong kind is reported
/// with its line and column; what only makes sense per op (a hash's
/// length, a value's type) names the op's index.
pub(crate) fn parse(text: &str) -> Result<Txn, String> {
    let root: TxnJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut keys = Vec::with_capacity(root.keys.len());
    for (index, decl) in root.keys.into_iter().enumerate() {
        let at = format!("key {index}");
        let mode = match decl.mode {
            ModeJson::R => Mode::R,
            ModeJson::RW => Mode::RW,
        };
        // A key is text ("key") or any bytes in hexadecimal ("key_hex").
        let key = match (decl.key, decl.key_hex) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(hex)) => crate::text::parse_hex(&hex).ok_or_else(|| {
                format!("{at}: \"key_hex\" must be a string of hexadecimal bytes")
            })?,
            _ => return Err(format!("{at}: give exactly one of \"key\" and \"key_hex\"")),
        };
        keys.push((decl.id, mode, key));
    }
    let mut ops = Vec::with_capacity(root.ops.len());
    for (index, op) in root.ops.into_iter().enumerate() {
        let at = format!("op {index}");
        ops.push(match op {
            OpJson::Get { key } => Op::Get(key),
            OpJson::Set {
                key,
                value: raw,
                type_name,
                ttl_ms,
            } => Op::Set(key, value(&raw, type_name, &at)?, ttl_ms),
            OpJson::Del { key } => Op::Del(key),
            OpJson::Add { key, delta } => Op::Add(key, delta),
            OpJson::Expire { key, ttl_ms } => Op::Expire(key, ttl_ms),
            OpJson::Persist { key } => Op::Persist(key),
            OpJson::Ttl { key } => Op::Ttl(key),
            OpJson::AssertExists { key } => Op::AssertExists(key),
            OpJson::AssertNotExists { key } => Op::AssertNotExists(key),
            OpJson::AssertType { key, type_name } => Op::AssertType(
                key,
                match type_name {
                    AssertTypeJson::Missing => None,
                    AssertTypeJson::String => Some(ValueType::String),
                    AssertTypeJson::Bytes => Some(ValueType::Bytes),
                    AssertTypeJson::Int => Some(ValueType::Int64),
                },
            ),
            OpJson::AssertIntEq { key, value } => Op::AssertIntEq(key, value),
            OpJson::AssertBytesHashEq { key, hash: text } => {
                Op::AssertBytesHashEq(key, hash(&text, &at)?)
            }
            OpJson::AssertStringHashEq { key, hash: text } => {
                Op::AssertStringHashEq(key, hash(&text, &at)?)
            }
            OpJson::AssertRevisionEq { key, revision } => Op::AssertRevisionEq(key, revision),
        });
    }
    let mut txn = Txn::from_parts(keys, ops);
    match root.durability {
        None => {}
        Some(DurabilityJson::Sync) => {
            txn.durability(Durability::Sync);
        }
        Some(DurabilityJson::Async) => {
            txn.durability(Durability::Async);
        }
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
        assert!(error.contains("FLY") && error.contains("line 1"), "{error}");
        assert!(parse("not json").is_err());
    }

    #[test]
    fn a_misspelled_field_is_an_error_with_its_line_and_column_never_ignored() {
        // `ttl` for `ttl_ms` once set the key with no TTL. An op is read
        // whole before its fields are checked, so its errors point at the
        // end of its object.
        let error = parse(
            "{\"keys\": [{\"id\": 0, \"mode\": \"RW\", \"key\": \"k\"}],\n \"ops\": [{\"op\": \"SET\", \"key\": 0, \"value\": \"v\", \"ttl\": 1000}]}",
        )
        .expect_err("unknown field");
        assert_eq!(
            error,
            "unknown field `ttl`, expected one of `key`, `value`, `type`, `ttl_ms` at line 2 column 60"
        );
        for (text, wanted) in [
            (
                r#"{"keys": [], "ops": [], "durabilty": "sync"}"#,
                "unknown field `durabilty`",
            ),
            (
                r#"{"keys": [{"id": 0, "mode": "RW", "kee": "k"}], "ops": []}"#,
                "unknown field `kee`",
            ),
            (
                r#"{"keys": [], "ops": [{"op": "GET", "key": 0, "extra": 1}]}"#,
                "unknown field `extra`",
            ),
            (
                r#"{"keys": [], "ops": [{"op": "ADD", "key": 0}]}"#,
                "missing field `delta`",
            ),
            (
                r#"{"keys": [], "ops": [{"op": "ADD", "key": 0, "delta": "1"}]}"#,
                "invalid type",
            ),
            (
                r#"{"keys": [{"id": 0, "mode": "W", "key": "k"}], "ops": []}"#,
                "unknown variant `W`",
            ),
            (
                r#"{"keys": [], "ops": [], "durability": "soon"}"#,
                "unknown variant `soon`",
            ),
            (
                r#"{"keys": [{"id": 0, "mode": "R"}], "ops": []}"#,
                "key 0: give exactly one",
            ),
            (
                r#"{"keys": [], "ops": [{"op": "ASSERT_BYTES_HASH_EQ", "key": 0, "hash": "ab"}]}"#,
                "op 0: a BLAKE3 hash is 32 bytes",
            ),
            (
                r#"{"keys": [], "ops": [{"op": "SET", "key": 0, "value": [1]}]}"#,
                "op 0: \"value\" must be",
            ),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(wanted), "{text}: {error}");
        }
    }
}
