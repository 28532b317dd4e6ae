//! Real files and directories.
//!
//! Calls that wait for the device run on tokio's blocking pool; paths and
//! buffers are moved into the closure, which is why reads return owned
//! vectors. Small reads and writes are the exception: they are served by
//! (or land in) the OS page cache in a microsecond or two, while a trip
//! through the pool costs two thread wake-ups, ten times more (the WAL
//! writes once per group commit; a page-cache miss reads one page). A
//! small read the page cache does not hold blocks the calling worker for
//! one device read, as reads do in engines without an async runtime.
//! Syncs, which always wait for the device, always go to the pool.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jubilant_core::env::{File, Fs, OpenMode};

use crate::RealEnv;

/// Reads and writes up to this size run on the calling thread.
const INLINE_BYTES_MAX: usize = 256 * 1024;

/// The name of the lock file [`Fs::lock_dir`] creates in a directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Runs `f` on the blocking pool; a panic in `f` is resumed here.
async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(io::Error::other(format!(
            "blocking file task was cancelled: {err}"
        ))),
    }
}

/// Up to `len` bytes at `offset` (fewer at the end of the file).
fn read_fully(file: &fs::File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// An open file.
#[derive(Clone, Debug)]
pub struct RealFile {
    file: Arc<fs::File>,
}

impl File for RealFile {
    fn read_at(&self, offset: u64, len: usize) -> impl Future<Output = io::Result<Vec<u8>>> + Send {
        let file = Arc::clone(&self.file);
        async move {
            if len <= INLINE_BYTES_MAX {
                read_fully(&file, offset, len)
            } else {
                blocking(move || read_fully(&file, offset, len)).await
            }
        }
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.len() <= INLINE_BYTES_MAX {
            // Written from the caller's buffer: no copy, no allocation (the
            // WAL writer's every batch comes this way).
            self.file.write_all_at(data, offset)
        } else {
            let file = Arc::clone(&self.file);
            let data = data.to_vec();
            blocking(move || file.write_all_at(&data, offset)).await
        }
    }

    fn sync_data(&self) -> impl Future<Output = io::Result<()>> + Send {
        let file = Arc::clone(&self.file);
        // std's sync_data is fdatasync(2) on Linux.
        blocking(move || file.sync_data())
    }

    fn set_len(&self, len: u64) -> impl Future<Output = io::Result<()>> + Send {
        let file = Arc::clone(&self.file);
        blocking(move || file.set_len(len))
    }

    fn len(&self) -> impl Future<Output = io::Result<u64>> + Send {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(file.metadata()?.len()))
    }
}

/// The exclusive lock on a directory; released when dropped (or when the
/// process dies, since it is an `flock`).
#[derive(Debug)]
pub struct RealDirLock {
    _file: fs::File,
    path: PathBuf,
}

impl RealDirLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Fs for RealEnv {
    type File = RealFile;
    type DirLock = RealDirLock;

    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
    ) -> impl Future<Output = io::Result<RealFile>> + Send {
        let path = path.to_path_buf();
        blocking(move || {
            let mut options = OpenOptions::new();
            options.read(true).write(true);
            if mode == OpenMode::CreateNew {
                options.create_new(true);
            }
            let file = options
                .open(&path)
                .map_err(|e| with_path(e, "open", &path))?;
            Ok(RealFile {
                file: Arc::new(file),
            })
        })
    }

    fn create_dir_all(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let dir = dir.to_path_buf();
        blocking(move || {
            fs::create_dir_all(&dir).map_err(|e| with_path(e, "create directory", &dir))
        })
    }

    fn list(&self, dir: &Path) -> impl Future<Output = io::Result<Vec<String>>> + Send {
        let dir = dir.to_path_buf();
        blocking(move || {
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir).map_err(|e| with_path(e, "list", &dir))? {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        blocking(move || fs::rename(&from, &to).map_err(|e| with_path(e, "rename", &from)))
    }

    fn remove(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let path = path.to_path_buf();
        blocking(move || fs::remove_file(&path).map_err(|e| with_path(e, "remove", &path)))
    }

    fn sync_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>> + Send {
        let dir = dir.to_path_buf();
        blocking(move || {
            // fsync on a directory handle persists its entries (creates,
            // renames, removes).
            fs::File::open(&dir)
                .and_then(|handle| handle.sync_all())
                .map_err(|e| with_path(e, "sync directory", &dir))
        })
    }

    fn lock_dir(&self, dir: &Path) -> impl Future<Output = io::Result<RealDirLock>> + Send {
        let path = dir.join(LOCK_FILE_NAME);
        blocking(move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| with_path(e, "open lock file", &path))?;
            match file.try_lock() {
                Ok(()) => Ok(RealDirLock { _file: file, path }),
                Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is locked by another process", path.display()),
                )),
                Err(fs::TryLockError::Error(err)) => Err(with_path(err, "lock", &path)),
            }
        })
    }
}

/// Adds the operation and path to an error, keeping its kind.
fn with_path(err: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{op} {}: {err}", path.display()))
}
