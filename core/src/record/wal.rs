//! WAL records and their FlatBuffer encoding (`schemas/fbs/wal.fbs`): the
//! logical records the WAL writer logs and recovery replays, and which a
//! value pointer names (so the value reader, below the WAL, decodes them
//! too).
//!
//! A record read back is run through the FlatBuffers verifier and every
//! field it needs is checked before anything is built from it, so a payload
//! that passed the frame CRC but was written by a buggy encoder is still a
//! typed error, never a panic or a wrong record.

use jubilant_schemas::wal;

use crate::log::RecordPos;
use crate::record::{Mutation, Record, StoredValue, ValueType, VlogPointer};

/// The pointer to the record logged at `pos` with `length` payload bytes.
pub(crate) fn pointer_to(pos: RecordPos, length: usize) -> VlogPointer {
    VlogPointer {
        // The scan refuses a segment id past 32 bits, and the log counts
        // up from the largest it found.
        segment: u32::try_from(pos.segment).expect("WAL segment ids fit 32 bits"),
        length: u32::try_from(length).expect("a record's length fits 32 bits"),
        offset: pos.offset,
        lsn: pos.lsn,
        crc: pos.crc,
    }
}

/// One logical WAL record (SPEC 7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// Transaction `txn` starts writing.
    Begin {
        /// Transaction id.
        txn: u64,
    },
    /// `key` gets a value; its revision is the commit's LSN.
    Upsert {
        /// Transaction id.
        txn: u64,
        /// The key (any bytes).
        key: Vec<u8>,
        /// The value's type.
        value_type: ValueType,
        /// The value's bytes, whatever their length (format 3: the WAL is
        /// the value log, and a leaf points to this record for a value
        /// over the inline limit, design 11.2).
        value: Vec<u8>,
        /// Expiry, Unix ms, if the key has a TTL.
        expires_at_ms: Option<u64>,
        /// The key's revision when it is not the commit's LSN: a value the
        /// value-log GC moved keeps the revision of the write that made it.
        revision: Option<u64>,
    },
    /// `key` is deleted.
    Tombstone {
        /// Transaction id.
        txn: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// Transaction `txn` committed: its records are to be replayed.
    Commit {
        /// Transaction id.
        txn: u64,
        /// Unix ms by the TTL clock when it ran (0: not recorded).
        now_ms: u64,
    },
    /// Transaction `txn` aborted: its records are to be ignored.
    Abort {
        /// Transaction id.
        txn: u64,
    },
    /// A checkpoint of everything up to `lsn` is durable.
    Checkpoint {
        /// The checkpoint's LSN.
        lsn: u64,
    },
}

/// Why a WAL payload is not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// The payload is not a valid FlatBuffer of the WAL schema.
    #[error("WAL record is not a valid FlatBuffer: {0}")]
    Invalid(String),
    /// The FlatBuffer is valid but a field the record needs is wrong.
    #[error("WAL record is malformed: {0}")]
    Malformed(&'static str),
}

fn value_type_to_wire(value_type: ValueType) -> wal::ValueType {
    match value_type {
        ValueType::Bytes => wal::ValueType::Bytes,
        ValueType::String => wal::ValueType::String,
        ValueType::Int64 => wal::ValueType::Int64,
    }
}

fn value_type_from_wire(value_type: wal::ValueType) -> Result<ValueType, WalError> {
    match value_type {
        wal::ValueType::Bytes => Ok(ValueType::Bytes),
        wal::ValueType::String => Ok(ValueType::String),
        wal::ValueType::Int64 => Ok(ValueType::Int64),
        _ => Err(WalError::Malformed("unknown value type")),
    }
}

/// An `Upsert`'s fields, borrowed from a [`WalRecord`] or a [`Mutation`].
struct UpsertRef<'a> {
    txn: u64,
    key: &'a [u8],
    value_type: ValueType,
    value: &'a [u8],
    expires_at_ms: Option<u64>,
    revision: Option<u64>,
}

type Body = (
    wal::Body,
    flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
);

fn upsert_body(builder: &mut flatbuffers::FlatBufferBuilder<'_>, upsert: &UpsertRef<'_>) -> Body {
    let key = builder.create_vector(upsert.key);
    let inline_value = Some(builder.create_vector(upsert.value));
    let created = wal::Upsert::create(
        builder,
        &wal::UpsertArgs {
            txn: upsert.txn,
            key: Some(key),
            value_type: value_type_to_wire(upsert.value_type),
            inline_value,
            vlog: None,
            expires_at_unix_ms: upsert.expires_at_ms.unwrap_or(0),
            revision: upsert.revision.unwrap_or(0),
        },
    );
    (wal::Body::Upsert, created.as_union_value())
}

fn tombstone_body(builder: &mut flatbuffers::FlatBufferBuilder<'_>, txn: u64, key: &[u8]) -> Body {
    let key = builder.create_vector(key);
    let tombstone = wal::Tombstone::create(
        builder,
        &wal::TombstoneArgs {
            txn,
            key: Some(key),
        },
    );
    (wal::Body::Tombstone, tombstone.as_union_value())
}

fn finish(
    builder: &mut flatbuffers::FlatBufferBuilder<'_>,
    body_type: wal::Body,
    body: flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
) {
    let root = wal::Record::create(
        builder,
        &wal::RecordArgs {
            body_type,
            body: Some(body),
        },
    );
    builder.finish(root, None);
}

impl WalRecord {
    /// The record that logs `mutation` as part of transaction `txn`; with
    /// `keep_revision`, a `Put` keeps its record's revision instead of
    /// taking the commit's LSN.
    #[cfg(test)]
    pub(crate) fn for_mutation(txn: u64, mutation: &Mutation, keep_revision: bool) -> WalRecord {
        match mutation {
            Mutation::Put { key, record } => WalRecord::Upsert {
                txn,
                key: key.clone(),
                value_type: record.value_type,
                value: match &record.value {
                    StoredValue::Inline(bytes) => bytes.clone(),
                    StoredValue::Vlog(_) => unreachable!("a commit carries values, not pointers"),
                },
                expires_at_ms: record.expires_at_ms,
                revision: keep_revision.then_some(record.revision),
            },
            Mutation::Delete { key } => WalRecord::Tombstone {
                txn,
                key: key.clone(),
            },
        }
    }

    /// The transaction a record belongs to and the mutation it logs, with
    /// `revision` (its commit LSN) unless the record keeps its own; `None`
    /// for records that log no change.
    pub(crate) fn into_mutation(self, revision: u64) -> Option<(u64, Mutation)> {
        match self {
            WalRecord::Upsert {
                txn,
                key,
                value_type,
                value,
                expires_at_ms,
                revision: kept,
            } => Some((
                txn,
                Mutation::Put {
                    key,
                    record: Record {
                        value_type,
                        value: StoredValue::Inline(value),
                        expires_at_ms,
                        revision: kept.unwrap_or(revision),
                    },
                },
            )),
            WalRecord::Tombstone { txn, key } => Some((txn, Mutation::Delete { key })),
            _ => None,
        }
    }

    /// The record's FlatBuffer bytes: the payload of one log frame.
    pub fn encode(&self) -> Vec<u8> {
        let payload_bytes = match self {
            WalRecord::Upsert { key, value, .. } => key.len() + value.len(),
            WalRecord::Tombstone { key, .. } => key.len(),
            _ => 0,
        };
        let mut builder = jubilant_schemas::builder_for(payload_bytes);
        let (body_type, body) = match self {
            WalRecord::Begin { txn } => (
                wal::Body::Begin,
                wal::Begin::create(&mut builder, &wal::BeginArgs { txn: *txn }).as_union_value(),
            ),
            WalRecord::Upsert {
                txn,
                key,
                value_type,
                value,
                expires_at_ms,
                revision,
            } => upsert_body(
                &mut builder,
                &UpsertRef {
                    txn: *txn,
                    key,
                    value_type: *value_type,
                    value,
                    expires_at_ms: *expires_at_ms,
                    revision: *revision,
                },
            ),
            WalRecord::Tombstone { txn, key } => tombstone_body(&mut builder, *txn, key),
            WalRecord::Commit { txn, now_ms } => (
                wal::Body::Commit,
                wal::Commit::create(
                    &mut builder,
                    &wal::CommitArgs {
                        txn: *txn,
                        now_unix_ms: *now_ms,
                    },
                )
                .as_union_value(),
            ),
            WalRecord::Abort { txn } => (
                wal::Body::Abort,
                wal::Abort::create(&mut builder, &wal::AbortArgs { txn: *txn }).as_union_value(),
            ),
            WalRecord::Checkpoint { lsn } => (
                wal::Body::Checkpoint,
                wal::Checkpoint::create(&mut builder, &wal::CheckpointArgs { lsn: *lsn })
                    .as_union_value(),
            ),
        };
        finish(&mut builder, body_type, body);
        builder.finished_data().to_vec()
    }

    /// The bytes of the record that logs `mutation` in transaction `txn`
    /// (as [`WalRecord::for_mutation`] then [`WalRecord::encode`] would
    /// make them), built in `builder` from the mutation's own key and value
    /// without copying them first: the writer encodes every record of a
    /// commit this way, a million for a bulk load.
    pub(crate) fn encode_mutation<'b>(
        builder: &'b mut flatbuffers::FlatBufferBuilder<'static>,
        txn: u64,
        mutation: &Mutation,
        keep_revision: bool,
    ) -> &'b [u8] {
        builder.reset();
        let (body_type, body) = match mutation {
            Mutation::Put { key, record } => upsert_body(
                builder,
                &UpsertRef {
                    txn,
                    key,
                    value_type: record.value_type,
                    value: match &record.value {
                        StoredValue::Inline(bytes) => bytes,
                        // The writer turns values into pointers after it
                        // logs them, never before.
                        StoredValue::Vlog(_) => {
                            unreachable!("a commit carries values, not pointers")
                        }
                    },
                    expires_at_ms: record.expires_at_ms,
                    revision: keep_revision.then_some(record.revision),
                },
            ),
            Mutation::Delete { key } => tombstone_body(builder, txn, key),
        };
        finish(builder, body_type, body);
        builder.finished_data()
    }

    /// Decodes one log frame's payload.
    pub fn decode(payload: &[u8]) -> Result<WalRecord, WalError> {
        let record =
            wal::root_as_record(payload).map_err(|error| WalError::Invalid(error.to_string()))?;
        let missing = WalError::Malformed("the body does not match its type");
        let record = match record.body_type() {
            wal::Body::Begin => WalRecord::Begin {
                txn: record.body_as_begin().ok_or(missing)?.txn(),
            },
            wal::Body::Upsert => {
                let upsert = record.body_as_upsert().ok_or(missing)?;
                let key = upsert
                    .key()
                    .ok_or(WalError::Malformed("upsert without a key"))?;
                // Format 3 logs every value in its record; a value-log
                // pointer is format 2's, which this build does not read.
                let value = match (upsert.inline_value(), upsert.vlog()) {
                    (Some(bytes), None) => bytes.bytes().to_vec(),
                    _ => {
                        return Err(WalError::Malformed(
                            "upsert needs its value in the record (and no value-log pointer)",
                        ));
                    }
                };
                let expires = upsert.expires_at_unix_ms();
                let revision = upsert.revision();
                WalRecord::Upsert {
                    txn: upsert.txn(),
                    key: key.bytes().to_vec(),
                    value_type: value_type_from_wire(upsert.value_type())?,
                    value,
                    expires_at_ms: (expires != 0).then_some(expires),
                    revision: (revision != 0).then_some(revision),
                }
            }
            wal::Body::Tombstone => {
                let tombstone = record.body_as_tombstone().ok_or(missing)?;
                WalRecord::Tombstone {
                    txn: tombstone.txn(),
                    key: tombstone
                        .key()
                        .ok_or(WalError::Malformed("tombstone without a key"))?
                        .bytes()
                        .to_vec(),
                }
            }
            wal::Body::Commit => {
                let commit = record.body_as_commit().ok_or(missing)?;
                WalRecord::Commit {
                    txn: commit.txn(),
                    now_ms: commit.now_unix_ms(),
                }
            }
            wal::Body::Abort => WalRecord::Abort {
                txn: record.body_as_abort().ok_or(missing)?.txn(),
            },
            wal::Body::Checkpoint => WalRecord::Checkpoint {
                lsn: record.body_as_checkpoint().ok_or(missing)?.lsn(),
            },
            _ => return Err(WalError::Malformed("unknown record type")),
        };
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<WalRecord> {
        vec![
            WalRecord::Begin { txn: 7 },
            WalRecord::Upsert {
                txn: 7,
                key: "user:42".into(),
                value_type: ValueType::String,
                value: b"hello".to_vec(),
                expires_at_ms: Some(1_700_000_000_000),
                revision: None,
            },
            WalRecord::Upsert {
                txn: 7,
                key: "blob".into(),
                value_type: ValueType::Bytes,
                value: vec![7; 70_000],
                expires_at_ms: None,
                revision: Some(41),
            },
            WalRecord::Upsert {
                txn: 8,
                key: "empty".into(),
                value_type: ValueType::Bytes,
                value: Vec::new(),
                expires_at_ms: None,
                revision: None,
            },
            WalRecord::Tombstone {
                txn: 7,
                key: "gone".into(),
            },
            WalRecord::Tombstone {
                txn: 9,
                key: vec![0x00, 0xff, b'\r', b'\n', 0xc3],
            },
            WalRecord::Commit {
                txn: 7,
                now_ms: 1_700_000_000_000,
            },
            WalRecord::Abort { txn: 8 },
            WalRecord::Checkpoint { lsn: 1234 },
        ]
    }

    /// The writer's borrowed encoding makes the very bytes the owned one
    /// does, with one builder reused across records.
    #[test]
    fn a_mutation_encodes_as_its_record_does() {
        let mut builder = flatbuffers::FlatBufferBuilder::new();
        for record in samples() {
            let Some((txn, mutation)) = record.clone().into_mutation(99) else {
                continue;
            };
            for keep in [false, true] {
                let expected = WalRecord::for_mutation(txn, &mutation, keep).encode();
                let bytes = WalRecord::encode_mutation(&mut builder, txn, &mutation, keep);
                assert_eq!(bytes, expected.as_slice(), "{record:?} keep {keep}");
                let decoded = WalRecord::decode(bytes).expect("decodes");
                let revision = match &mutation {
                    Mutation::Put { record, .. } => record.revision,
                    Mutation::Delete { .. } => 99,
                };
                assert_eq!(
                    decoded.into_mutation(revision),
                    Some((txn, mutation.clone()))
                );
            }
        }
    }

    #[test]
    fn every_record_round_trips() {
        for record in samples() {
            assert_eq!(WalRecord::decode(&record.encode()), Ok(record));
        }
    }

    #[test]
    fn garbage_and_truncated_payloads_are_errors_not_panics() {
        for record in samples() {
            let bytes = record.encode();
            for cut in 0..bytes.len() {
                let _ = WalRecord::decode(&bytes[..cut]);
            }
            for at in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[at] ^= 0x5a;
                let _ = WalRecord::decode(&flipped);
            }
        }
        assert!(WalRecord::decode(&[]).is_err());
        assert!(WalRecord::decode(&[0xff; 64]).is_err());
    }

    /// Records written when keys were FlatBuffers strings (a byte vector
    /// plus a NUL terminator) read as the same key bytes: no migration.
    #[test]
    fn a_record_with_a_string_key_reads_as_its_bytes() {
        let mut builder = flatbuffers::FlatBufferBuilder::new();
        let key = builder.create_string("user:42");
        let tombstone = wal::Tombstone::create(
            &mut builder,
            &wal::TombstoneArgs {
                txn: 3,
                key: Some(flatbuffers::WIPOffset::new(key.value())),
            },
        );
        let root = wal::Record::create(
            &mut builder,
            &wal::RecordArgs {
                body_type: wal::Body::Tombstone,
                body: Some(tombstone.as_union_value()),
            },
        );
        builder.finish(root, None);
        assert_eq!(
            WalRecord::decode(builder.finished_data()),
            Ok(WalRecord::Tombstone {
                txn: 3,
                key: b"user:42".to_vec(),
            })
        );
    }

    #[test]
    fn an_upsert_without_its_value_or_with_a_format_2_pointer_is_malformed() {
        let pointer = wal::VlogPointer::new(1, 100, 4096, 7, 0);
        for (inline, vlog) in [
            (false, None),
            (true, Some(&pointer)),
            (false, Some(&pointer)),
        ] {
            let mut builder = flatbuffers::FlatBufferBuilder::new();
            let key = builder.create_vector(b"k");
            let inline_value = inline.then(|| builder.create_vector(b"v"));
            let upsert = wal::Upsert::create(
                &mut builder,
                &wal::UpsertArgs {
                    txn: 1,
                    key: Some(key),
                    inline_value,
                    vlog,
                    ..wal::UpsertArgs::default()
                },
            );
            let root = wal::Record::create(
                &mut builder,
                &wal::RecordArgs {
                    body_type: wal::Body::Upsert,
                    body: Some(upsert.as_union_value()),
                },
            );
            builder.finish(root, None);
            assert!(
                matches!(
                    WalRecord::decode(builder.finished_data()),
                    Err(WalError::Malformed(_))
                ),
                "inline {inline}, pointer {}",
                vlog.is_some()
            );
        }
    }
}
