//! Requests encoded and responses decoded, the client's half of the wire
//! protocol (the server's is `jubilant_server::wire`). A response is
//! verified (identifier, FlatBuffers verifier, every field) before it
//! becomes a [`Reply`]; anything else is a [`ClientError::Protocol`].

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use jubilant_core::db::{Durability, Value};
use jubilant_core::record::ValueType;
use jubilant_core::record::wire::{
    decode_value as decode_wire_value, encode_value as encode_wire_value,
};
use jubilant_core::txn::{Mode, Op, OpResult, Ttl, Txn, TxnOutcome};
use jubilant_schemas::frame::encode_frame;
use jubilant_schemas::wire;

use crate::ClientError;

/// A decoded answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Txn(TxnOutcome),
    Info(String),
    Checkpoint(u64),
    Pong,
    Health(crate::Health),
    Scan(jubilant_core::db::ScanPage),
    BackupBegun(crate::BackupBegun),
    /// A backup chunk whose hash verified.
    BackupChunk(Vec<u8>),
    BackupEnded,
    AuthOk,
}

pub(crate) fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Protocol(format!("an answer of the wrong kind: {reply:?}"))
}

pub(crate) fn wrong_result(result: &OpResult) -> ClientError {
    ClientError::Protocol(format!("a result of the wrong kind: {result:?}"))
}

fn finish(
    mut b: FlatBufferBuilder<'_>,
    id: u64,
    body_type: wire::RequestBody,
    body: WIPOffset<UnionWIPOffset>,
) -> Vec<u8> {
    let root = wire::Request::create(
        &mut b,
        &wire::RequestArgs {
            id,
            body_type,
            body: Some(body),
        },
    );
    wire::finish_request_buffer(&mut b, root);
    encode_frame(b.finished_data())
}

pub(crate) fn encode_ping(id: u64) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::Ping::create(&mut b, &wire::PingArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::Ping, body)
}

pub(crate) fn encode_health(id: u64) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::Health::create(&mut b, &wire::HealthArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::Health, body)
}

pub(crate) fn encode_scan(id: u64, request: &jubilant_core::db::ScanRequest) -> Vec<u8> {
    use std::ops::Bound;
    let bound_bytes = |bound: &Bound<Vec<u8>>| match bound {
        Bound::Included(key) | Bound::Excluded(key) => key.len(),
        Bound::Unbounded => 0,
    };
    let mut b =
        jubilant_schemas::builder_for(bound_bytes(&request.start) + bound_bytes(&request.end));
    let mut bound = |bound: &Bound<Vec<u8>>| match bound {
        Bound::Unbounded => (None, wire::BoundKind::Unbounded),
        Bound::Included(key) => (Some(b.create_vector(key)), wire::BoundKind::Included),
        Bound::Excluded(key) => (Some(b.create_vector(key)), wire::BoundKind::Excluded),
    };
    let (start, start_kind) = bound(&request.start);
    let (end, end_kind) = bound(&request.end);
    let body = wire::Scan::create(
        &mut b,
        &wire::ScanArgs {
            start,
            start_kind,
            end,
            end_kind,
            prefix: None,
            limit: u32::try_from(request.limit).unwrap_or(u32::MAX),
            keys_only: request.keys_only,
            reverse: request.reverse,
        },
    )
    .as_union_value();
    finish(b, id, wire::RequestBody::Scan, body)
}

pub(crate) fn encode_auth(id: u64, user: &str, password: &[u8]) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(user.len() + password.len());
    let user = b.create_string(user);
    let password = b.create_vector(password);
    let body = wire::Auth::create(
        &mut b,
        &wire::AuthArgs {
            user: Some(user),
            password: Some(password),
        },
    )
    .as_union_value();
    finish(b, id, wire::RequestBody::Auth, body)
}

pub(crate) fn encode_backup_begin(id: u64) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::BackupBegin::create(&mut b, &wire::BackupBeginArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::BackupBegin, body)
}

pub(crate) fn encode_backup_read(
    id: u64,
    backup: u64,
    (file, offset, length): (u32, u64, u32),
) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::BackupRead::create(
        &mut b,
        &wire::BackupReadArgs {
            backup,
            file,
            offset,
            length,
        },
    )
    .as_union_value();
    finish(b, id, wire::RequestBody::BackupRead, body)
}

pub(crate) fn encode_backup_end(id: u64, backup: u64) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::BackupEnd::create(&mut b, &wire::BackupEndArgs { backup }).as_union_value();
    finish(b, id, wire::RequestBody::BackupEnd, body)
}

pub(crate) fn encode_info(id: u64) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::Info::create(&mut b, &wire::InfoArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::Info, body)
}

pub(crate) fn encode_checkpoint(id: u64) -> Vec<u8> {
    let mut b = jubilant_schemas::builder_for(0);
    let body = wire::Checkpoint::create(&mut b, &wire::CheckpointArgs {}).as_union_value();
    finish(b, id, wire::RequestBody::Checkpoint, body)
}

pub(crate) fn encode_txn(id: u64, txn: &Txn) -> Vec<u8> {
    /// Bytes of a key declaration or an op beyond its key and value.
    const ENTRY_BYTES: usize = 48;
    let payload_bytes = txn
        .keys()
        .iter()
        .map(|(_, _, key)| ENTRY_BYTES + key.len())
        .chain(txn.ops().iter().map(|op| match op {
            Op::Set(_, value, _) => ENTRY_BYTES + value.len_bytes(),
            _ => ENTRY_BYTES,
        }))
        .sum();
    let mut b = jubilant_schemas::builder_for(payload_bytes);
    let keys: Vec<_> = txn
        .keys()
        .iter()
        .map(|(key_id, mode, key)| {
            let key = b.create_vector(key);
            wire::KeyDecl::create(
                &mut b,
                &wire::KeyDeclArgs {
                    id: *key_id,
                    mode: match mode {
                        Mode::R => wire::Mode::R,
                        Mode::RW => wire::Mode::RW,
                    },
                    key: Some(key),
                },
            )
        })
        .collect();
    let ops: Vec<_> = txn
        .ops()
        .iter()
        .map(|op| {
            let mut args = wire::OpArgs {
                key_id: op.key(),
                ..wire::OpArgs::default()
            };
            match op {
                Op::Get(_) => args.kind = wire::OpKind::Get,
                Op::Set(_, value, ttl) => {
                    args.kind = wire::OpKind::Set;
                    args.value = Some(encode_wire_value(&mut b, value));
                    args.has_ttl = ttl.is_some();
                    args.ttl_ms = ttl.unwrap_or(0);
                }
                Op::Del(_) => args.kind = wire::OpKind::Del,
                Op::Add(_, delta) => {
                    args.kind = wire::OpKind::Add;
                    args.delta = *delta;
                }
                Op::Expire(_, ttl_ms) => {
                    args.kind = wire::OpKind::Expire;
                    args.ttl_ms = *ttl_ms;
                }
                Op::Persist(_) => args.kind = wire::OpKind::Persist,
                Op::Ttl(_) => args.kind = wire::OpKind::Ttl,
                Op::AssertExists(_) => args.kind = wire::OpKind::AssertExists,
                Op::AssertNotExists(_) => args.kind = wire::OpKind::AssertNotExists,
                Op::AssertType(_, found) => {
                    args.kind = wire::OpKind::AssertType;
                    args.type_code = found.map_or(0, ValueType::code);
                }
                Op::AssertIntEq(_, n) => {
                    args.kind = wire::OpKind::AssertIntEq;
                    args.int = *n;
                }
                Op::AssertBytesHashEq(_, hash) => {
                    args.kind = wire::OpKind::AssertBytesHashEq;
                    args.hash = Some(b.create_vector(hash));
                }
                Op::AssertStringHashEq(_, hash) => {
                    args.kind = wire::OpKind::AssertStringHashEq;
                    args.hash = Some(b.create_vector(hash));
                }
                Op::AssertRevisionEq(_, revision) => {
                    args.kind = wire::OpKind::AssertRevisionEq;
                    args.revision = *revision;
                }
            }
            wire::Op::create(&mut b, &args)
        })
        .collect();
    let (keys, ops) = (b.create_vector(&keys), b.create_vector(&ops));
    let durability = match txn.durability_class() {
        None => wire::Durability::Default,
        Some(Durability::Sync) => wire::Durability::Sync,
        Some(Durability::Async) => wire::Durability::Async,
    };
    let body = wire::Txn::create(
        &mut b,
        &wire::TxnArgs {
            keys: Some(keys),
            ops: Some(ops),
            durability,
        },
    )
    .as_union_value();
    finish(b, id, wire::RequestBody::Txn, body)
}

fn protocol(message: impl Into<String>) -> ClientError {
    ClientError::Protocol(message.into())
}

fn decode_value(value: wire::Value<'_>) -> Result<Value, ClientError> {
    decode_wire_value(value).map_err(|error| protocol(error.to_string()))
}

fn decode_result(result: wire::OpResult<'_>) -> Result<OpResult, ClientError> {
    Ok(match result.kind() {
        wire::OpKind::Get => OpResult::Get(if result.found() {
            let value = result
                .value()
                .ok_or_else(|| protocol("a GET that found a value carries none"))?;
            Some((decode_value(value)?, result.revision()))
        } else {
            None
        }),
        wire::OpKind::Set => OpResult::Set,
        wire::OpKind::Del => OpResult::Del(result.found()),
        wire::OpKind::Add => OpResult::Add(result.int()),
        wire::OpKind::Expire => OpResult::Expire(result.found()),
        wire::OpKind::Persist => OpResult::Persist(result.found()),
        wire::OpKind::Ttl => OpResult::Ttl(match result.ttl_kind() {
            wire::TtlKind::Missing => Ttl::Missing,
            wire::TtlKind::NoExpiry => Ttl::NoExpiry,
            wire::TtlKind::Ms => Ttl::Ms(result.ttl_ms()),
            other => return Err(protocol(format!("unknown TTL kind {}", other.0))),
        }),
        wire::OpKind::AssertExists
        | wire::OpKind::AssertNotExists
        | wire::OpKind::AssertType
        | wire::OpKind::AssertIntEq
        | wire::OpKind::AssertBytesHashEq
        | wire::OpKind::AssertStringHashEq
        | wire::OpKind::AssertRevisionEq => OpResult::Held,
        other => return Err(protocol(format!("unknown op kind {}", other.0))),
    })
}

/// Decodes one response frame: its request id and the answer.
pub(crate) fn decode_response(payload: &[u8]) -> (u64, Result<Reply, ClientError>) {
    if payload.len() < 8 || !wire::request_buffer_has_identifier(payload) {
        return (
            0,
            Err(protocol("a response without the \"JUBW\" identifier")),
        );
    }
    let response = match flatbuffers::root::<wire::Response>(payload) {
        Ok(response) => response,
        Err(error) => return (0, Err(protocol(format!("not a valid response: {error}")))),
    };
    let id = response.id();
    let missing = || protocol("a response without its body");
    let answer = match response.body_type() {
        wire::ResponseBody::TxnResult => response
            .body_as_txn_result()
            .ok_or_else(missing)
            .and_then(|txn| {
                let results = txn
                    .results()
                    .iter()
                    .flatten()
                    .map(decode_result)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Reply::Txn(TxnOutcome {
                    lsn: txn.lsn(),
                    read_only: txn.read_only(),
                    now_ms: txn.now_ms(),
                    results,
                }))
            }),
        wire::ResponseBody::Error => {
            response
                .body_as_error()
                .ok_or_else(missing)
                .and_then(|error| {
                    Err(ClientError::Server {
                        code: error.code(),
                        message: error.message().unwrap_or_default().to_owned(),
                        op: usize::try_from(error.op()).ok(),
                        found_type: ValueType::from_code(error.found_type()),
                        revision: error.revision(),
                        key: error.key().map(|key| key.bytes().to_vec()),
                    })
                })
        }
        wire::ResponseBody::InfoResult => response
            .body_as_info_result()
            .ok_or_else(missing)
            .map(|info| Reply::Info(info.text().unwrap_or_default().to_owned())),
        wire::ResponseBody::CheckpointResult => response
            .body_as_checkpoint_result()
            .ok_or_else(missing)
            .map(|checkpoint| Reply::Checkpoint(checkpoint.lsn())),
        wire::ResponseBody::Pong => Ok(Reply::Pong),
        wire::ResponseBody::ScanResult => response
            .body_as_scan_result()
            .ok_or_else(missing)
            .and_then(|page| {
                let entries = page
                    .entries()
                    .map(|entries| {
                        entries
                            .iter()
                            .map(|entry| {
                                let key = entry
                                    .key()
                                    .ok_or_else(|| protocol("a scan entry without its key"))?
                                    .bytes()
                                    .to_vec();
                                let value = entry.value().map(decode_value).transpose()?;
                                Ok((key, value))
                            })
                            .collect::<Result<Vec<_>, ClientError>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                let resume_after = if page.more() {
                    Some(
                        page.resume_after()
                            .ok_or_else(|| protocol("a scan page with more and no resume key"))?
                            .bytes()
                            .to_vec(),
                    )
                } else {
                    None
                };
                Ok(Reply::Scan(jubilant_core::db::ScanPage {
                    entries,
                    resume_after,
                }))
            }),
        wire::ResponseBody::HealthResult => response
            .body_as_health_result()
            .ok_or_else(missing)
            .and_then(|health| {
                let status = match health.status() {
                    wire::HealthStatus::Ok => crate::HealthStatus::Ok,
                    wire::HealthStatus::Failed => crate::HealthStatus::Failed,
                    wire::HealthStatus::ShuttingDown => crate::HealthStatus::ShuttingDown,
                    other => return Err(protocol(format!("unknown health status {}", other.0))),
                };
                Ok(Reply::Health(crate::Health {
                    status,
                    reason: health.reason().unwrap_or_default().to_owned(),
                    durable_lsn_lag: health.durable_lsn_lag(),
                    checkpoint_age: u64::try_from(health.checkpoint_age_ms())
                        .ok()
                        .map(std::time::Duration::from_millis),
                    wal_bytes_since_checkpoint: health.wal_bytes_since_checkpoint(),
                }))
            }),
        wire::ResponseBody::BackupBegun => response
            .body_as_backup_begun()
            .ok_or_else(missing)
            .and_then(|begun| {
                let files = begun
                    .files()
                    .iter()
                    .flatten()
                    .map(|file| {
                        let name = file
                            .name()
                            .ok_or_else(|| protocol("a backup file without its name"))?;
                        if !jubilant_core::db::is_backup_file_name(name) {
                            return Err(protocol(format!(
                                "a backup file named {name:?}, not a database file"
                            )));
                        }
                        if file.data_bytes() > file.length() {
                            return Err(protocol(format!(
                                "backup file {name} has {} bytes to copy but is {} long",
                                file.data_bytes(),
                                file.length()
                            )));
                        }
                        Ok(jubilant_core::db::BackupFile {
                            name: name.to_owned(),
                            length: file.length(),
                            data_bytes: file.data_bytes(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Reply::BackupBegun(crate::BackupBegun {
                    backup: begun.backup(),
                    info: jubilant_core::db::BackupInfo {
                        generation: begun.generation(),
                        checkpoint_lsn: begun.checkpoint_lsn(),
                        end_lsn: begun.end_lsn(),
                        files,
                    },
                }))
            }),
        wire::ResponseBody::BackupChunk => response
            .body_as_backup_chunk()
            .ok_or_else(missing)
            .and_then(|chunk| {
                let data = chunk.data().map(|data| data.bytes()).unwrap_or_default();
                let hash = chunk.blake3().map(|hash| hash.bytes()).unwrap_or_default();
                if blake3::hash(data).as_bytes().as_slice() != hash {
                    return Err(protocol("a backup chunk whose BLAKE3 hash does not match"));
                }
                Ok(Reply::BackupChunk(data.to_vec()))
            }),
        wire::ResponseBody::BackupEnded => Ok(Reply::BackupEnded),
        wire::ResponseBody::AuthOk => Ok(Reply::AuthOk),
        other => Err(protocol(format!("unknown response type {}", other.0))),
    };
    (id, answer)
}
