//! The 16-byte frame around the FlatBuffer in MANIFEST and the superblock
//! files: `magic (8) | u32 length | u32 CRC32 of the FlatBuffer | FlatBuffer`.
//!
//! The frame is what makes a torn or stale write of these small files
//! detectable before any FlatBuffer field is trusted; the FlatBuffer is then
//! run through the verifier as well.

use crate::env::File;

/// Bytes of the frame before the FlatBuffer.
pub(crate) const META_FRAME_BYTES: usize = 16;
/// No MANIFEST or superblock is larger; a length above it is corruption,
/// refused before anything is allocated.
pub(crate) const META_FILE_BYTES_MAX: u64 = 64 * 1024;

pub(crate) fn encode(magic: &[u8; 8], flatbuffer: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(META_FRAME_BYTES + flatbuffer.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(flatbuffer.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(flatbuffer).to_le_bytes());
    bytes.extend_from_slice(flatbuffer);
    assert!(bytes.len() as u64 <= META_FILE_BYTES_MAX);
    bytes
}

/// The FlatBuffer inside a frame, or why there is none.
pub(crate) fn decode<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8], String> {
    if bytes.len() < META_FRAME_BYTES {
        return Err(format!(
            "{} bytes is shorter than the {META_FRAME_BYTES}-byte frame",
            bytes.len()
        ));
    }
    if &bytes[..8] != magic {
        return Err("magic bytes do not match".into());
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let Some(body) = bytes.get(META_FRAME_BYTES..META_FRAME_BYTES + len) else {
        return Err(format!(
            "frame length {len} runs past the {}-byte file",
            bytes.len()
        ));
    };
    if crc32fast::hash(body) != crc {
        return Err("CRC mismatch".into());
    }
    Ok(body)
}

/// Reads a whole meta file, refusing one longer than any we write.
pub(crate) async fn read_all<F: File>(file: &F) -> std::io::Result<Result<Vec<u8>, String>> {
    let len = file.len().await?;
    if len > META_FILE_BYTES_MAX {
        return Ok(Err(format!("{len} bytes is longer than any such file")));
    }
    // An unreadable sector reads as bytes whose CRC fails (see
    // `env::read_salvaging`): the file is then invalid, not an I/O error.
    Ok(Ok(crate::env::read_salvaging(file, 0, len as usize)
        .await?
        .bytes))
}
