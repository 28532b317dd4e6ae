//! The MANIFEST: what identifies a database and what cannot change after
//! creation (format version, schema hashes, page size, inline threshold).
//!
//! Written once at creation, last of the store's files, so its presence
//! means creation finished. A major version other than
//! [`FORMAT_MAJOR`] refuses to open.

use flatbuffers::FlatBufferBuilder;
use jubilant_schemas::disk;

use super::meta_file;

/// The on-disk format's major version: this build opens only databases of
/// this major version.
pub const FORMAT_MAJOR: u16 = 3;
/// The on-disk format's minor version (compatible additions).
pub const FORMAT_MINOR: u16 = 0;
/// The hash ASSERT_HASH uses, recorded so a later build cannot silently
/// change what stored hashes mean.
pub const ASSERT_HASH_ALGORITHM: &str = "blake3";

const MAGIC: &[u8; 8] = b"JUBMANIF";

/// The decoded MANIFEST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Format major version.
    pub format_major: u16,
    /// Format minor version.
    pub format_minor: u16,
    /// BLAKE3 of `wire.fbs` at creation.
    pub wire_schema_hash: [u8; 32],
    /// BLAKE3 of `wal.fbs` at creation.
    pub wal_schema_hash: [u8; 32],
    /// BLAKE3 of `disk.fbs` at creation.
    pub disk_schema_hash: [u8; 32],
    /// Identifies the database.
    pub database_uuid: [u8; 16],
    /// Creation time, Unix ms.
    pub created_at_unix_ms: u64,
    /// Bytes per page.
    pub page_bytes: u32,
    /// Values whose encoding is longer stay in their WAL record, and the
    /// leaf points to it.
    pub inline_value_bytes_max: u32,
    /// Name of the ASSERT_HASH algorithm.
    pub assert_hash_algorithm: String,
    /// Bumped whenever the MANIFEST is rewritten.
    pub generation: u64,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut builder = FlatBufferBuilder::new();
        let wire = builder.create_vector(&self.wire_schema_hash);
        let wal = builder.create_vector(&self.wal_schema_hash);
        let disk_hash = builder.create_vector(&self.disk_schema_hash);
        let uuid = builder.create_vector(&self.database_uuid);
        let algorithm = builder.create_string(&self.assert_hash_algorithm);
        let root = disk::Manifest::create(
            &mut builder,
            &disk::ManifestArgs {
                format_major: self.format_major,
                format_minor: self.format_minor,
                wire_schema_hash: Some(wire),
                wal_schema_hash: Some(wal),
                disk_schema_hash: Some(disk_hash),
                database_uuid: Some(uuid),
                created_at_unix_ms: self.created_at_unix_ms,
                page_size: self.page_bytes,
                inline_value_bytes_max: self.inline_value_bytes_max,
                assert_hash_algorithm: Some(algorithm),
                generation: self.generation,
            },
        );
        builder.finish(root, None);
        meta_file::encode(MAGIC, builder.finished_data())
    }

    /// Decodes a MANIFEST file's bytes, or says why they are not one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let body = meta_file::decode(MAGIC, bytes)?;
        let table = flatbuffers::root::<disk::Manifest>(body)
            .map_err(|error| format!("invalid FlatBuffer: {error}"))?;
        fn fixed<const N: usize>(
            field: &str,
            bytes: Option<flatbuffers::Vector<'_, u8>>,
        ) -> Result<[u8; N], String> {
            let bytes = bytes.ok_or_else(|| format!("{field} missing"))?;
            bytes
                .bytes()
                .try_into()
                .map_err(|_| format!("{field} is {} bytes, expected {N}", bytes.len()))
        }
        Ok(Manifest {
            format_major: table.format_major(),
            format_minor: table.format_minor(),
            wire_schema_hash: fixed("wire_schema_hash", table.wire_schema_hash())?,
            wal_schema_hash: fixed("wal_schema_hash", table.wal_schema_hash())?,
            disk_schema_hash: fixed("disk_schema_hash", table.disk_schema_hash())?,
            database_uuid: fixed("database_uuid", table.database_uuid())?,
            created_at_unix_ms: table.created_at_unix_ms(),
            page_bytes: table.page_size(),
            inline_value_bytes_max: table.inline_value_bytes_max(),
            assert_hash_algorithm: table.assert_hash_algorithm().unwrap_or_default().to_owned(),
            generation: table.generation(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_major: FORMAT_MAJOR,
            format_minor: FORMAT_MINOR,
            wire_schema_hash: jubilant_schemas::WIRE_SCHEMA_HASH,
            wal_schema_hash: jubilant_schemas::WAL_SCHEMA_HASH,
            disk_schema_hash: jubilant_schemas::DISK_SCHEMA_HASH,
            database_uuid: [7; 16],
            created_at_unix_ms: 1_700_000_000_000,
            page_bytes: 4096,
            inline_value_bytes_max: 512,
            assert_hash_algorithm: ASSERT_HASH_ALGORITHM.into(),
            generation: 1,
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        assert_eq!(Manifest::decode(&sample().encode()), Ok(sample()));
    }

    #[test]
    fn a_torn_manifest_is_refused() {
        let bytes = sample().encode();
        assert!(Manifest::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(Manifest::decode(&flipped), Err("CRC mismatch".into()));
    }
}
