//! Files and directories.
//!
//! The contract is the one a careful engine assumes of a POSIX filesystem, and
//! the one the simulated disk enforces adversarially:
//!
//! - a write is durable only after [`File::sync_data`] on that file returns
//!   `Ok`; until then a crash may keep it, lose it, or tear it at any 512-byte
//!   sector boundary, independently of other unsynced writes;
//! - creating, renaming or removing a name is durable only after
//!   [`Fs::sync_dir`] on the directory holding it returns `Ok`; so is
//!   creating a directory, whose name lives in its parent
//!   ([`create_dir_durably`]);
//! - a failed `sync_data` or `sync_dir` means the state on disk is unknown:
//!   retrying and getting `Ok` proves nothing (the kernel may have dropped the
//!   dirty pages), so callers treat it as fatal until they reopen and recover.
//!
//! There is deliberately no `append`: every write names its offset, because
//! the engine always knows where its next byte goes and positional writes
//! cannot race with each other.

use std::future::Future;
use std::io;
use std::path::Path;

/// How [`Fs::open`] treats an existing or missing file. Files are always
/// opened for both reading and writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist (`NotFound` otherwise).
    Existing,
    /// The file must not exist (`AlreadyExists` otherwise); it is created
    /// empty. The new name is not durable until the directory is synced.
    CreateNew,
}

/// A directory tree of regular files.
pub trait Fs {
    /// An open file.
    type File: File;
    /// Proof that this process holds a directory's exclusive lock; dropping it
    /// releases the lock.
    type DirLock: Send + Sync + 'static;

    /// Opens `path` for reading and writing.
    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
    ) -> impl Future<Output = io::Result<Self::File>> + Send;

    /// Creates `dir` and any missing parents. Succeeds if it already exists.
    fn create_dir_all(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Names of the regular files directly inside `dir`, sorted bytewise.
    /// Names that are not valid UTF-8 are skipped: the engine never creates
    /// them, so they are not its files.
    fn list(&self, dir: &Path) -> impl Future<Output = io::Result<Vec<String>>> + Send;

    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Makes every create, rename and remove of a name in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Takes the exclusive lock on `dir` (a `LOCK` file inside it). Fails with
    /// [`io::ErrorKind::WouldBlock`] if another process holds it: a directory
    /// is opened by one process at a time.
    fn lock_dir(&self, dir: &Path) -> impl Future<Output = io::Result<Self::DirLock>> + Send;
}

/// An open regular file, addressed by offset.
#[expect(
    clippy::len_without_is_empty,
    reason = "a file's length is asked of the filesystem; emptiness is not a question the engine asks"
)]
pub trait File: Send + Sync + 'static {
    /// Reads up to `len` bytes at `offset`. Fewer bytes come back only when
    /// the file ends first.
    fn read_at(&self, offset: u64, len: usize) -> impl Future<Output = io::Result<Vec<u8>>> + Send;

    /// Writes all of `data` at `offset`, extending the file (with zeros in any
    /// gap) if needed. On error, any part of `data` may or may not have landed.
    fn write_at(&self, offset: u64, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// `fdatasync`: makes every completed write and length change of this file
    /// durable.
    fn sync_data(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> impl Future<Output = io::Result<()>> + Send;

    /// The file's current length in bytes.
    fn len(&self) -> impl Future<Output = io::Result<u64>> + Send;
}

/// Whether `error` says the disk (ENOSPC) or the user's quota (EDQUOT) is
/// out of space: an error for the operation that needed room, which
/// changed nothing durable, not a failure of the file.
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Creates `dir` and any missing ancestors, and makes every name on the
/// path durable by syncing each directory's parent, outermost first: a
/// power loss right after the engine created its data directory must not
/// take the database away with it (and `create_if_missing` then quietly
/// make an empty one). Directories that already exist are synced too: the
/// process that created one may have failed or died before its parent's
/// sync, and nothing on disk says so. That costs one directory sync per
/// path component, once per open.
pub async fn create_dir_durably<F: Fs>(fs: &F, dir: &Path) -> io::Result<()> {
    fs.create_dir_all(dir).await?;
    let mut parents: Vec<&Path> = Vec::new();
    for ancestor in dir.ancestors() {
        match ancestor.parent() {
            // A root has no parent to hold its name.
            None => break,
            // A relative path's first component lives in the working
            // directory.
            Some(parent) if parent.as_os_str().is_empty() => {
                if !ancestor.as_os_str().is_empty() {
                    parents.push(Path::new("."));
                }
                break;
            }
            Some(parent) => parents.push(parent),
        }
    }
    // Outermost first: each parent holds a durable name by the time its
    // child's entry is synced.
    for parent in parents.iter().rev() {
        fs.sync_dir(parent).await?;
    }
    Ok(())
}
