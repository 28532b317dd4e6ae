//! The wire protocol's messages (`schemas/fbs/wire.fbs`) as the server sees
//! them: requests decoded into the engine's own types ([`Txn`]), responses
//! encoded from its results.
//!
//! Invariants kept here:
//! - **Nothing from a socket is trusted unverified.** A payload must carry
//!   the file identifier and pass the FlatBuffers verifier; then every
//!   field is checked (UTF-8 keys and strings, enum values in range, hash
//!   lengths, the request limits) before anything reaches the engine. A
//!   payload that fails gets a typed [`ErrorReply`], never a panic.
//! - **Each error has its own code** (SPEC 5), and the engine's typed
//!   transaction errors map onto them one to one ([`ErrorReply::from_txn`]).

use std::ops::Bound;

use jubilant_core::db::{DbError, Durability, SCAN_LIMIT_DEFAULT, ScanPage, ScanRequest, Value};
use jubilant_core::record::ValueType;
use jubilant_core::record::wire::{self as record_wire, WireValueError};
use jubilant_core::txn::{KeyId, Mode, Op, OpResult, Ttl, Txn, TxnError, TxnOutcome};
use jubilant_schemas::wire;

/// Bytes of one op's result in a response beyond its value.
const RESULT_BYTES: usize = 48;

pub use wire::{ErrorCode, HealthStatus};

/// A decoded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A transaction (single-key commands are one-op transactions).
    Txn(Txn),
    /// `INFO`.
    Info,
    /// `CHECKPOINT`.
    Checkpoint,
    /// `PING`.
    Ping,
    /// `HEALTH`: status and staleness as fields.
    Health,
    /// One page of a scan (its byte bound is the server's to set).
    Scan(ScanRequest),
    /// Start an online backup.
    BackupBegin,
    /// A piece of a backup's file.
    BackupRead {
        /// The backup's id.
        backup: u64,
        /// The file's index in the backup's list.
        file: u32,
        /// Where in the file.
        offset: u64,
        /// Bytes asked for (the server may send fewer).
        length: u32,
    },
    /// End a backup, releasing its pin.
    BackupEnd {
        /// The backup's id.
        backup: u64,
    },
    /// Authenticate the connection.
    Auth {
        /// The user's name.
        user: String,
        /// The password.
        password: Vec<u8>,
    },
}

/// Entries a scan page may ask for at most.
pub const SCAN_LIMIT_MAX: usize = 10_000;

/// Key and value bytes of one scan page on a server whose answers may
/// take `response_bytes_max`: a quarter of it (the page's last entry may
/// cross the bound by one value, and entries carry their framing), at
/// most 4 MiB so a page never holds a client up for long.
pub fn scan_bytes_max(response_bytes_max: u64) -> usize {
    usize::try_from(response_bytes_max / 4)
        .unwrap_or(usize::MAX)
        .clamp(1, 4 << 20)
}

/// The server's health, as `Health` answers it and INFO shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHealth {
    /// Ok, Failed (the database refuses everything but INFO and Health
    /// until restarted) or ShuttingDown.
    pub status: wire::HealthStatus,
    /// Why it failed; empty otherwise.
    pub reason: String,
    /// The newest applied LSN minus the durable LSN.
    pub durable_lsn_lag: u64,
    /// Milliseconds since the last checkpoint finished, if one has.
    pub checkpoint_age_ms: Option<u64>,
    /// WAL bytes appended since the last checkpoint sealed.
    pub wal_bytes_since_checkpoint: u64,
}

/// What a request may carry at most.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Keys one transaction may declare.
    pub keys_per_txn_max: usize,
    /// Ops one transaction may carry.
    pub ops_per_txn_max: usize,
}

/// A typed error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// The error's code.
    pub code: ErrorCode,
    /// A message for people.
    pub message: String,
    /// The op it is about, if any.
    pub op: Option<usize>,
    /// For `AssertFailed`: the key's type as the transaction saw it.
    pub found_type: Option<ValueType>,
    /// For `AssertFailed`: the key's revision (0: missing).
    pub revision: u64,
    /// For `PermissionDenied`: the key refused.
    pub key: Option<Vec<u8>>,
}

impl ErrorReply {
    /// An error about no op in particular.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
            op: None,
            found_type: None,
            revision: 0,
            key: None,
        }
    }

    /// The answer to a request `user`'s ACL refused: about op `op` of a
    /// transaction, or the request as a whole.
    pub fn denied(user: &str, op: Option<usize>, denied: &crate::acl::Denied) -> Self {
        use crate::acl::Denied;
        let at = op.map_or_else(String::new, |op| format!(" (op {op})"));
        match denied {
            Denied::Command(name) => ErrorReply {
                op,
                ..ErrorReply::new(
                    ErrorCode::PermissionDenied,
                    format!("user {user} has no permission to run '{name}'{at}"),
                )
            },
            Denied::Key { command, key, .. } => ErrorReply {
                op,
                key: Some(key.clone()),
                ..ErrorReply::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "user {user} has no permission to access key {}{}{at}",
                        jubilant_core::record::Escaped(key),
                        if command.is_empty() {
                            String::new()
                        } else {
                            format!(" with '{command}'")
                        }
                    ),
                )
            },
        }
    }

    fn at_op(code: ErrorCode, op: usize, message: impl Into<String>) -> Self {
        ErrorReply {
            op: Some(op),
            ..ErrorReply::new(code, message)
        }
    }

    /// The answer for a transaction the engine refused or could not run.
    pub fn from_txn(error: &TxnError) -> Self {
        let message = error.to_string();
        match error {
            TxnError::KeyEmpty { .. } => ErrorReply::new(ErrorCode::KeyEmpty, message),
            TxnError::KeyTooLarge { .. } => ErrorReply::new(ErrorCode::KeyTooLarge, message),
            TxnError::DuplicateKeyId(_) => ErrorReply::new(ErrorCode::DuplicateKeyId, message),
            TxnError::DuplicateKey(_) => ErrorReply::new(ErrorCode::DuplicateKey, message),
            TxnError::UnknownKeyId { op, .. } => {
                ErrorReply::at_op(ErrorCode::UnknownKeyId, *op, message)
            }
            TxnError::WriteToReadKey { op, .. } => {
                ErrorReply::at_op(ErrorCode::WriteToReadKey, *op, message)
            }
            TxnError::Empty => ErrorReply::new(ErrorCode::InvalidRequest, message),
            TxnError::AssertFailed {
                op,
                found_type,
                revision,
            } => ErrorReply {
                found_type: *found_type,
                revision: *revision,
                ..ErrorReply::at_op(ErrorCode::AssertFailed, *op, message)
            },
            TxnError::NotAnInt { op, .. } => ErrorReply::at_op(ErrorCode::NotAnInt, *op, message),
            TxnError::Overflow { op } => ErrorReply::at_op(ErrorCode::Overflow, *op, message),
            TxnError::ValueTooLarge { op, .. } => {
                ErrorReply::at_op(ErrorCode::ValueTooLarge, *op, message)
            }
            TxnError::Busy { .. } | TxnError::AnswersBacklogged => {
                ErrorReply::new(ErrorCode::Busy, message)
            }
            TxnError::ResultTooLarge { op, .. } => {
                ErrorReply::at_op(ErrorCode::ResponseTooLarge, *op, message)
            }
            TxnError::Db(error) => ErrorReply::from_db(error),
        }
    }

    /// The answer for a request the engine failed.
    pub fn from_db(error: &DbError) -> Self {
        let code = match error {
            DbError::DiskFull(_) => ErrorCode::DiskFull,
            DbError::StorageFailed(_) => ErrorCode::StorageFailed,
            DbError::Closed => ErrorCode::ShuttingDown,
            DbError::BackupInProgress => ErrorCode::BackupInProgress,
            error if error.is_corruption() => ErrorCode::Corrupt,
            _ => ErrorCode::Internal,
        };
        ErrorReply::new(code, error.to_string())
    }
}

/// A response to encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A transaction ran to the end; `kinds` are its ops' kinds, in order.
    Txn {
        /// The kind of each op.
        kinds: Vec<wire::OpKind>,
        /// What it did.
        outcome: TxnOutcome,
    },
    /// A typed error.
    Error(ErrorReply),
    /// `INFO`'s text.
    Info(String),
    /// A checkpoint was written at this LSN.
    Checkpoint(u64),
    /// The answer to `PING`.
    Pong,
    /// The answer to `HEALTH`.
    Health(ServerHealth),
    /// A page of a scan.
    Scan(ScanPage),
    /// A backup began: the id later requests name it by, and what it holds.
    BackupBegun(u64, jubilant_core::db::BackupInfo),
    /// A piece of a backup's file (sent with its BLAKE3 hash).
    BackupChunk(Vec<u8>),
    /// A backup ended.
    BackupEnded,
    /// The connection is authenticated as this user.
    AuthOk(String),
}

/// The wire kind of `op`.
pub fn op_kind(op: &Op) -> wire::OpKind {
    match op {
        Op::Get(_) => wire::OpKind::Get,
        Op::Set(..) => wire::OpKind::Set,
        Op::Del(_) => wire::OpKind::Del,
        Op::Add(..) => wire::OpKind::Add,
        Op::Expire(..) => wire::OpKind::Expire,
        Op::Persist(_) => wire::OpKind::Persist,
        Op::Ttl(_) => wire::OpKind::Ttl,
        Op::AssertExists(_) => wire::OpKind::AssertExists,
        Op::AssertNotExists(_) => wire::OpKind::AssertNotExists,
        Op::AssertType(..) => wire::OpKind::AssertType,
        Op::AssertIntEq(..) => wire::OpKind::AssertIntEq,
        Op::AssertBytesHashEq(..) => wire::OpKind::AssertBytesHashEq,
        Op::AssertStringHashEq(..) => wire::OpKind::AssertStringHashEq,
        Op::AssertRevisionEq(..) => wire::OpKind::AssertRevisionEq,
    }
}

/// Decodes one frame's payload: the request's id (0 when the payload is not
/// a request at all, so no id can be read) and the request, or why it is
/// invalid.
pub fn decode_request(
    payload: &[u8],
    limits: &RequestLimits,
) -> (u64, Result<Request, ErrorReply>) {
    let invalid = |message: String| ErrorReply::new(ErrorCode::InvalidRequest, message);
    if payload.len() < 8 || !wire::request_buffer_has_identifier(payload) {
        return (
            0,
            Err(invalid(
                "not a request: no \"JUBW\" file identifier".to_owned(),
            )),
        );
    }
    let request = match wire::root_as_request(payload) {
        Ok(request) => request,
        Err(error) => return (0, Err(invalid(format!("not a valid FlatBuffer: {error}")))),
    };
    let id = request.id();
    let decoded = match request.body_type() {
        wire::RequestBody::Txn => match request.body_as_txn() {
            Some(txn) => decode_txn(txn, limits).map(Request::Txn),
            None => Err(invalid("a transaction request without its body".to_owned())),
        },
        wire::RequestBody::Info => Ok(Request::Info),
        wire::RequestBody::Checkpoint => Ok(Request::Checkpoint),
        wire::RequestBody::Ping => Ok(Request::Ping),
        wire::RequestBody::Health => Ok(Request::Health),
        wire::RequestBody::Scan => match request.body_as_scan() {
            Some(scan) => decode_scan(scan).map(Request::Scan),
            None => Err(invalid("a scan request without its body".to_owned())),
        },
        wire::RequestBody::BackupBegin => Ok(Request::BackupBegin),
        wire::RequestBody::BackupRead => match request.body_as_backup_read() {
            Some(read) => Ok(Request::BackupRead {
                backup: read.backup(),
                file: read.file(),
                offset: read.offset(),
                length: read.length(),
            }),
            None => Err(invalid("a backup read without its body".to_owned())),
        },
        wire::RequestBody::Auth => match request.body_as_auth() {
            Some(auth) => Ok(Request::Auth {
                user: auth.user().unwrap_or_default().to_owned(),
                password: auth
                    .password()
                    .map(|password| password.bytes().to_vec())
                    .unwrap_or_default(),
            }),
            None => Err(invalid("an auth request without its body".to_owned())),
        },
        wire::RequestBody::BackupEnd => match request.body_as_backup_end() {
            Some(end) => Ok(Request::BackupEnd {
                backup: end.backup(),
            }),
            None => Err(invalid("a backup end without its body".to_owned())),
        },
        other => Err(invalid(format!("unknown request type {}", other.0))),
    };
    (id, decoded)
}

fn decode_bound(
    key: Option<flatbuffers::Vector<'_, u8>>,
    kind: wire::BoundKind,
    which: &str,
) -> Result<Bound<Vec<u8>>, ErrorReply> {
    let key = || key.map(|key| key.bytes().to_vec()).unwrap_or_default();
    match kind {
        wire::BoundKind::Unbounded => Ok(Bound::Unbounded),
        wire::BoundKind::Included => Ok(Bound::Included(key())),
        wire::BoundKind::Excluded => Ok(Bound::Excluded(key())),
        other => Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!("unknown {which} bound kind {}", other.0),
        )),
    }
}

fn decode_scan(scan: wire::Scan<'_>) -> Result<ScanRequest, ErrorReply> {
    let mut request = ScanRequest::new(
        decode_bound(scan.start(), scan.start_kind(), "start")?,
        decode_bound(scan.end(), scan.end_kind(), "end")?,
    );
    if let Some(prefix) = scan.prefix() {
        request.within_prefix(prefix.bytes());
    }
    request.reverse = scan.reverse();
    request.keys_only = scan.keys_only();
    request.limit = match usize::try_from(scan.limit()).unwrap_or(usize::MAX) {
        0 => SCAN_LIMIT_DEFAULT,
        limit => limit.min(SCAN_LIMIT_MAX),
    };
    Ok(request)
}

fn decode_txn(txn: wire::Txn<'_>, limits: &RequestLimits) -> Result<Txn, ErrorReply> {
    let invalid = |message: String| ErrorReply::new(ErrorCode::InvalidRequest, message);
    let declared = txn.keys().map_or(0, |keys| keys.len());
    if declared > limits.keys_per_txn_max {
        return Err(ErrorReply::new(
            ErrorCode::TooManyKeys,
            format!(
                "{declared} keys declared; the limit is {}",
                limits.keys_per_txn_max
            ),
        ));
    }
    let count = txn.ops().map_or(0, |ops| ops.len());
    if count > limits.ops_per_txn_max {
        return Err(ErrorReply::new(
            ErrorCode::TooManyOps,
            format!("{count} ops; the limit is {}", limits.ops_per_txn_max),
        ));
    }
    let mut keys: Vec<(KeyId, Mode, Vec<u8>)> = Vec::with_capacity(declared);
    for decl in txn.keys().iter().flatten() {
        let mode = match decl.mode() {
            wire::Mode::R => Mode::R,
            wire::Mode::RW => Mode::RW,
            other => {
                return Err(invalid(format!(
                    "key id {}: unknown mode {}",
                    decl.id(),
                    other.0
                )));
            }
        };
        // Any bytes (SPEC 1): the executor checks length and emptiness.
        let key = decl
            .key()
            .map(|key| key.bytes().to_vec())
            .unwrap_or_default();
        keys.push((decl.id(), mode, key));
    }
    let mut ops = Vec::with_capacity(count);
    for (index, op) in txn.ops().iter().flatten().enumerate() {
        ops.push(decode_op(index, op)?);
    }
    let mut decoded = Txn::from_parts(keys, ops);
    match txn.durability() {
        wire::Durability::Default => {}
        wire::Durability::Sync => {
            decoded.durability(Durability::Sync);
        }
        wire::Durability::Async => {
            decoded.durability(Durability::Async);
        }
        other => return Err(invalid(format!("unknown durability {}", other.0))),
    }
    Ok(decoded)
}

fn decode_op(index: usize, op: wire::Op<'_>) -> Result<Op, ErrorReply> {
    let invalid = |message: String| ErrorReply::at_op(ErrorCode::InvalidRequest, index, message);
    let key = op.key_id();
    let hash = || -> Result<[u8; 32], ErrorReply> {
        let bytes = op.hash().map(|hash| hash.bytes()).unwrap_or_default();
        <[u8; 32]>::try_from(bytes)
            .map_err(|_| invalid(format!("a BLAKE3 hash is 32 bytes, not {}", bytes.len())))
    };
    Ok(match op.kind() {
        wire::OpKind::Get => Op::Get(key),
        wire::OpKind::Set => {
            let Some(value) = op.value() else {
                return Err(invalid("SET without a value".to_owned()));
            };
            let ttl = op.has_ttl().then(|| op.ttl_ms());
            Op::Set(key, decode_value(index, value)?, ttl)
        }
        wire::OpKind::Del => Op::Del(key),
        wire::OpKind::Add => Op::Add(key, op.delta()),
        wire::OpKind::Expire => Op::Expire(key, op.ttl_ms()),
        wire::OpKind::Persist => Op::Persist(key),
        wire::OpKind::Ttl => Op::Ttl(key),
        wire::OpKind::AssertExists => Op::AssertExists(key),
        wire::OpKind::AssertNotExists => Op::AssertNotExists(key),
        wire::OpKind::AssertType => {
            let found = match op.type_code() {
                0 => None,
                code => Some(
                    ValueType::from_code(code)
                        .ok_or_else(|| invalid(format!("unknown type code {code}")))?,
                ),
            };
            Op::AssertType(key, found)
        }
        wire::OpKind::AssertIntEq => Op::AssertIntEq(key, op.int()),
        wire::OpKind::AssertBytesHashEq => Op::AssertBytesHashEq(key, hash()?),
        wire::OpKind::AssertStringHashEq => Op::AssertStringHashEq(key, hash()?),
        wire::OpKind::AssertRevisionEq => Op::AssertRevisionEq(key, op.revision()),
        other => return Err(invalid(format!("unknown op kind {}", other.0))),
    })
}

fn decode_value(index: usize, value: wire::Value<'_>) -> Result<Value, ErrorReply> {
    record_wire::decode_value(value).map_err(|error| match error {
        WireValueError::NotUtf8 => {
            ErrorReply::at_op(ErrorCode::InvalidUtf8, index, error.to_string())
        }
        WireValueError::UnknownType(_) => {
            ErrorReply::at_op(ErrorCode::InvalidRequest, index, error.to_string())
        }
    })
}

/// Encodes `response` to request `id` as a FlatBuffer payload (frame it
/// with [`crate::frame::encode_frame`]).
pub fn encode_response(id: u64, response: &Response) -> Vec<u8> {
    let payload_bytes = match response {
        Response::Txn { outcome, .. } => outcome
            .results
            .iter()
            .map(|result| match result {
                OpResult::Get(Some((value, _))) => RESULT_BYTES + value.len_bytes(),
                _ => RESULT_BYTES,
            })
            .sum(),
        Response::Error(error) => error.message.len(),
        Response::Info(text) => text.len(),
        Response::Health(health) => health.reason.len(),
        Response::Scan(page) => page
            .entries
            .iter()
            .map(|(key, value)| {
                RESULT_BYTES + key.len() + value.as_ref().map_or(0, Value::len_bytes)
            })
            .sum(),
        Response::BackupBegun(_, begun) => begun
            .files
            .iter()
            .map(|file| RESULT_BYTES + file.name.len())
            .sum(),
        Response::BackupChunk(data) => data.len() + 64,
        Response::AuthOk(user) => user.len(),
        Response::Checkpoint(_) | Response::Pong | Response::BackupEnded => 0,
    };
    let mut builder = jubilant_schemas::builder_for(payload_bytes);
    let (body_type, body) = match response {
        Response::Txn { kinds, outcome } => {
            let results: Vec<_> = outcome
                .results
                .iter()
                .enumerate()
                .map(|(index, result)| {
                    let kind = kinds.get(index).copied().unwrap_or(wire::OpKind::Get);
                    let mut args = wire::OpResultArgs {
                        kind,
                        ..wire::OpResultArgs::default()
                    };
                    match result {
                        OpResult::Get(Some((value, revision))) => {
                            args.found = true;
                            args.value = Some(record_wire::encode_value(&mut builder, value));
                            args.revision = *revision;
                        }
                        OpResult::Get(None) | OpResult::Set | OpResult::Held => {}
                        OpResult::Del(found)
                        | OpResult::Expire(found)
                        | OpResult::Persist(found) => args.found = *found,
                        OpResult::Add(n) => args.int = *n,
                        OpResult::Ttl(ttl) => {
                            (args.ttl_kind, args.ttl_ms) = match ttl {
                                Ttl::Missing => (wire::TtlKind::Missing, 0),
                                Ttl::NoExpiry => (wire::TtlKind::NoExpiry, 0),
                                Ttl::Ms(ms) => (wire::TtlKind::Ms, *ms),
                            };
                        }
                    }
                    wire::OpResult::create(&mut builder, &args)
                })
                .collect();
            let results = builder.create_vector(&results);
            let body = wire::TxnResult::create(
                &mut builder,
                &wire::TxnResultArgs {
                    lsn: outcome.lsn,
                    read_only: outcome.read_only,
                    results: Some(results),
                    now_ms: outcome.now_ms,
                },
            );
            (wire::ResponseBody::TxnResult, body.as_union_value())
        }
        Response::Error(error) => {
            let message = builder.create_string(&error.message);
            let key = error.key.as_deref().map(|key| builder.create_vector(key));
            let body = wire::Error::create(
                &mut builder,
                &wire::ErrorArgs {
                    code: error.code,
                    message: Some(message),
                    op: error
                        .op
                        .map_or(-1, |op| i32::try_from(op).unwrap_or(i32::MAX)),
                    found_type: error.found_type.map_or(0, ValueType::code),
                    revision: error.revision,
                    key,
                },
            );
            (wire::ResponseBody::Error, body.as_union_value())
        }
        Response::Info(text) => {
            let text = builder.create_string(text);
            let body =
                wire::InfoResult::create(&mut builder, &wire::InfoResultArgs { text: Some(text) });
            (wire::ResponseBody::InfoResult, body.as_union_value())
        }
        Response::Checkpoint(lsn) => {
            let body = wire::CheckpointResult::create(
                &mut builder,
                &wire::CheckpointResultArgs { lsn: *lsn },
            );
            (wire::ResponseBody::CheckpointResult, body.as_union_value())
        }
        Response::Pong => {
            let body = wire::Pong::create(&mut builder, &wire::PongArgs {});
            (wire::ResponseBody::Pong, body.as_union_value())
        }
        Response::Health(health) => {
            let reason = builder.create_string(&health.reason);
            let body = wire::HealthResult::create(
                &mut builder,
                &wire::HealthResultArgs {
                    status: health.status,
                    reason: Some(reason),
                    durable_lsn_lag: health.durable_lsn_lag,
                    checkpoint_age_ms: health
                        .checkpoint_age_ms
                        .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
                    wal_bytes_since_checkpoint: health.wal_bytes_since_checkpoint,
                },
            );
            (wire::ResponseBody::HealthResult, body.as_union_value())
        }
        Response::Scan(page) => {
            let entries: Vec<_> = page
                .entries
                .iter()
                .map(|(key, value)| {
                    let key = builder.create_vector(key);
                    let value = value
                        .as_ref()
                        .map(|value| record_wire::encode_value(&mut builder, value));
                    wire::ScanEntry::create(
                        &mut builder,
                        &wire::ScanEntryArgs {
                            key: Some(key),
                            value,
                        },
                    )
                })
                .collect();
            let entries = builder.create_vector(&entries);
            let resume_after = page
                .resume_after
                .as_ref()
                .map(|key| builder.create_vector(key));
            let body = wire::ScanResult::create(
                &mut builder,
                &wire::ScanResultArgs {
                    entries: Some(entries),
                    more: page.resume_after.is_some(),
                    resume_after,
                },
            );
            (wire::ResponseBody::ScanResult, body.as_union_value())
        }
        Response::BackupBegun(backup, begun) => {
            let files: Vec<_> = begun
                .files
                .iter()
                .map(|file| {
                    let name = builder.create_string(&file.name);
                    wire::BackupFileInfo::create(
                        &mut builder,
                        &wire::BackupFileInfoArgs {
                            name: Some(name),
                            length: file.length,
                            data_bytes: file.data_bytes,
                        },
                    )
                })
                .collect();
            let files = builder.create_vector(&files);
            let body = wire::BackupBegun::create(
                &mut builder,
                &wire::BackupBegunArgs {
                    backup: *backup,
                    generation: begun.generation,
                    checkpoint_lsn: begun.checkpoint_lsn,
                    end_lsn: begun.end_lsn,
                    files: Some(files),
                },
            );
            (wire::ResponseBody::BackupBegun, body.as_union_value())
        }
        Response::BackupChunk(data) => {
            let hash = builder.create_vector(blake3::hash(data).as_bytes());
            let data = builder.create_vector(data);
            let body = wire::BackupChunk::create(
                &mut builder,
                &wire::BackupChunkArgs {
                    data: Some(data),
                    blake3: Some(hash),
                },
            );
            (wire::ResponseBody::BackupChunk, body.as_union_value())
        }
        Response::AuthOk(user) => {
            let user = builder.create_string(user);
            let body = wire::AuthOk::create(&mut builder, &wire::AuthOkArgs { user: Some(user) });
            (wire::ResponseBody::AuthOk, body.as_union_value())
        }
        Response::BackupEnded => {
            let body = wire::BackupEnded::create(&mut builder, &wire::BackupEndedArgs {});
            (wire::ResponseBody::BackupEnded, body.as_union_value())
        }
    };
    let root = wire::Response::create(
        &mut builder,
        &wire::ResponseArgs {
            id,
            body_type,
            body: Some(body),
        },
    );
    builder.finish(root, Some(wire::REQUEST_IDENTIFIER));
    builder.finished_data().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits {
        keys_per_txn_max: 4,
        ops_per_txn_max: 8,
    };

    /// Test ops: (kind, key id, value, hash length).
    struct TestOp {
        kind: wire::OpKind,
        key: u32,
        value: Option<(wire::ValueType, Vec<u8>)>,
        hash_len: Option<usize>,
        type_code: u8,
    }

    fn op(kind: wire::OpKind, key: u32) -> TestOp {
        TestOp {
            kind,
            key,
            value: None,
            hash_len: None,
            type_code: 0,
        }
    }

    fn txn_request(id: u64, keys: &[(u32, wire::Mode, &[u8])], ops: &[TestOp]) -> Vec<u8> {
        let mut b = flatbuffers::FlatBufferBuilder::new();
        let keys: Vec<_> = keys
            .iter()
            .map(|(id, mode, key)| {
                let key = b.create_vector(key);
                wire::KeyDecl::create(
                    &mut b,
                    &wire::KeyDeclArgs {
                        id: *id,
                        mode: *mode,
                        key: Some(key),
                    },
                )
            })
            .collect();
        let ops: Vec<_> = ops
            .iter()
            .map(|op| {
                let value = op.value.as_ref().map(|(type_, bytes)| {
                    let bytes = b.create_vector(bytes);
                    wire::Value::create(
                        &mut b,
                        &wire::ValueArgs {
                            type_: *type_,
                            bytes: Some(bytes),
                            int: 0,
                        },
                    )
                });
                let hash = op.hash_len.map(|len| b.create_vector(&vec![0u8; len]));
                wire::Op::create(
                    &mut b,
                    &wire::OpArgs {
                        kind: op.kind,
                        key_id: op.key,
                        value,
                        hash,
                        type_code: op.type_code,
                        ..wire::OpArgs::default()
                    },
                )
            })
            .collect();
        let (keys, ops) = (b.create_vector(&keys), b.create_vector(&ops));
        let txn = wire::Txn::create(
            &mut b,
            &wire::TxnArgs {
                keys: Some(keys),
                ops: Some(ops),
                durability: wire::Durability::Async,
            },
        );
        let root = wire::Request::create(
            &mut b,
            &wire::RequestArgs {
                id,
                body_type: wire::RequestBody::Txn,
                body: Some(txn.as_union_value()),
            },
        );
        wire::finish_request_buffer(&mut b, root);
        b.finished_data().to_vec()
    }

    fn code(payload: &[u8]) -> (u64, ErrorCode) {
        match decode_request(payload, &LIMITS) {
            (id, Err(error)) => (id, error.code),
            (_, Ok(request)) => panic!("decoded {request:?}"),
        }
    }

    #[test]
    fn a_valid_transaction_decodes_into_the_engines_own() {
        let mut set = op(wire::OpKind::Set, 1);
        set.value = Some((wire::ValueType::String, b"v".to_vec()));
        let payload = txn_request(
            7,
            &[(0, wire::Mode::R, b"a"), (1, wire::Mode::RW, b"b")],
            &[op(wire::OpKind::Get, 0), set],
        );
        let (id, request) = decode_request(&payload, &LIMITS);
        assert_eq!(id, 7);
        let mut expected = Txn::from_parts(
            vec![(0, Mode::R, "a".into()), (1, Mode::RW, "b".into())],
            vec![Op::Get(0), Op::Set(1, Value::from("v"), None)],
        );
        expected.durability(Durability::Async);
        assert_eq!(request, Ok(Request::Txn(expected)));
    }

    #[test]
    fn bad_fields_get_their_own_codes_and_garbage_gets_id_zero() {
        assert_eq!(
            code(b"not a flatbuffer at all"),
            (0, ErrorCode::InvalidRequest)
        );
        assert_eq!(code(&[]), (0, ErrorCode::InvalidRequest));
        // Keys are any bytes: only a value typed String must be UTF-8.
        let (id, binary_key) = decode_request(
            &txn_request(
                1,
                &[(0, wire::Mode::R, b"\xff\x00\xfe")],
                &[op(wire::OpKind::Get, 0)],
            ),
            &LIMITS,
        );
        assert_eq!(id, 1);
        let Ok(Request::Txn(txn)) = binary_key else {
            panic!("a binary key is refused: {binary_key:?}");
        };
        assert_eq!(txn.keys(), &[(0, Mode::R, b"\xff\x00\xfe".to_vec())]);
        let mut bad_value = op(wire::OpKind::Set, 0);
        bad_value.value = Some((wire::ValueType::String, b"\xc3\x28".to_vec()));
        let bad_value = txn_request(2, &[(0, wire::Mode::RW, b"k")], &[bad_value]);
        assert_eq!(code(&bad_value), (2, ErrorCode::InvalidUtf8));
        let keys: Vec<(u32, wire::Mode, &[u8])> =
            (0..5).map(|i| (i, wire::Mode::R, &b"k"[..])).collect();
        assert_eq!(
            code(&txn_request(3, &keys, &[])),
            (3, ErrorCode::TooManyKeys)
        );
        let ops: Vec<TestOp> = (0..9).map(|_| op(wire::OpKind::Get, 0)).collect();
        assert_eq!(
            code(&txn_request(4, &[(0, wire::Mode::R, b"k")], &ops)),
            (4, ErrorCode::TooManyOps)
        );
        let mut short_hash = op(wire::OpKind::AssertBytesHashEq, 0);
        short_hash.hash_len = Some(31);
        let short_hash = txn_request(5, &[(0, wire::Mode::R, b"k")], &[short_hash]);
        assert_eq!(code(&short_hash), (5, ErrorCode::InvalidRequest));
        let unknown = txn_request(6, &[(0, wire::Mode::R, b"k")], &[op(wire::OpKind(99), 0)]);
        assert_eq!(code(&unknown), (6, ErrorCode::InvalidRequest));
        let mut bad_type = op(wire::OpKind::AssertType, 0);
        bad_type.type_code = 9;
        let bad_type = txn_request(8, &[(0, wire::Mode::R, b"k")], &[bad_type]);
        assert_eq!(code(&bad_type), (8, ErrorCode::InvalidRequest));
        let set_without_value =
            txn_request(9, &[(0, wire::Mode::RW, b"k")], &[op(wire::OpKind::Set, 0)]);
        assert_eq!(code(&set_without_value), (9, ErrorCode::InvalidRequest));
    }

    #[test]
    fn truncated_and_flipped_payloads_are_errors_not_panics() {
        let mut set = op(wire::OpKind::Set, 0);
        set.value = Some((wire::ValueType::Bytes, vec![1, 2, 3]));
        let payload = txn_request(1, &[(0, wire::Mode::RW, b"key")], &[set]);
        for cut in 0..payload.len() {
            let _ = decode_request(&payload[..cut], &LIMITS);
        }
        for at in 0..payload.len() {
            let mut flipped = payload.clone();
            flipped[at] ^= 0xa5;
            let _ = decode_request(&flipped, &LIMITS);
        }
    }

    #[test]
    fn responses_encode_what_the_engine_answered() {
        let outcome = TxnOutcome {
            lsn: 42,
            read_only: false,
            now_ms: 0,
            results: vec![
                OpResult::Get(Some((Value::Int(5), 40))),
                OpResult::Ttl(Ttl::Ms(900)),
                OpResult::Held,
            ],
        };
        let kinds = vec![
            wire::OpKind::Get,
            wire::OpKind::Ttl,
            wire::OpKind::AssertExists,
        ];
        let payload = encode_response(3, &Response::Txn { kinds, outcome });
        let response = flatbuffers::root::<wire::Response>(&payload).expect("valid");
        assert_eq!(response.id(), 3);
        let result = response.body_as_txn_result().expect("a txn result");
        assert_eq!((result.lsn(), result.read_only()), (42, false));
        let results = result.results().expect("results");
        assert_eq!(results.len(), 3);
        let get = results.get(0);
        assert!(get.found());
        assert_eq!(get.revision(), 40);
        assert_eq!(get.value().map(|v| v.int()), Some(5));
        assert_eq!(results.get(1).ttl_kind(), wire::TtlKind::Ms);
        assert_eq!(results.get(1).ttl_ms(), 900);

        let error = ErrorReply::from_txn(&TxnError::AssertFailed {
            op: 2,
            found_type: Some(ValueType::String),
            revision: 17,
        });
        let payload = encode_response(4, &Response::Error(error));
        let response = flatbuffers::root::<wire::Response>(&payload).expect("valid");
        let error = response.body_as_error().expect("an error");
        assert_eq!(error.code(), ErrorCode::AssertFailed);
        assert_eq!(
            (error.op(), error.found_type(), error.revision()),
            (2, 2, 17)
        );
        assert!(error.message().is_some_and(|m| m.contains("op 2")));

        let busy = ErrorReply::from_txn(&TxnError::Busy { waited_ms: 5000 });
        assert_eq!(busy.code, ErrorCode::Busy);
        assert!(busy.message.contains("5000 ms"), "{}", busy.message);
    }
}
