//! What an engine's directory takes on disk.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One file's name (relative to the engine's directory) and the bytes the
/// file system allocated for it (holes not counted, preallocation counted).
pub struct FileUse {
    pub name: String,
    pub bytes: u64,
}

/// Every file under `dir`, largest first.
///
/// # Panics
/// If the directory cannot be read.
pub fn files(dir: &Path) -> Vec<FileUse> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir") {
            let entry = entry.expect("directory entry");
            let metadata = entry.metadata().expect("metadata");
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let path = entry.path();
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                // st_blocks counts 512-byte units whatever the block size.
                out.push(FileUse {
                    name,
                    bytes: metadata.blocks() * 512,
                });
            }
        }
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    out
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// `bytes` for a person: KiB below a MiB, MiB from there.
pub fn size_text(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{} KiB", bytes.div_ceil(1024))
    } else {
        format!("{:.1} MiB", mib(bytes))
    }
}
