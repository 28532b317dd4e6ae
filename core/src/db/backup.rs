//! Online backup and offline restore (design 12).
//!
//! [`Db::backup`] checkpoints, pins the durable superblock `g` (its pages
//! and every WAL segment stay, `store/pin.rs`), has the WAL writer make
//! everything written durable through `e`, and lists the files of a copy.
//! The copy is what a crash at that instant would leave on disk, minus
//! what neither superblock `g` nor a replay from its checkpoint LSN `c`
//! can reach; so opening it runs the ordinary crash recovery, which
//! replays `c + 1 ..= e`, and it holds every commit answered before the
//! backup began.
//!
//! Invariant kept here: **a copy holds only bytes that were durable on the
//! source while the pin lived**; the superblocks are written from the
//! pinned superblock itself, never read back from a file a checkpoint may
//! be overwriting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::env::{Env, File, OpenMode, create_dir_durably};
use crate::log::loss_history::DATA_LOSS_FILE;
use crate::log::segment::segment_name;
use crate::store::superblock::SUPERBLOCK_FILES;
use crate::store::{MANIFEST_FILE, PAGES_FILE, Store, StoreError, Superblock};

use super::{Db, DbError, DbOptions};

/// The largest piece of a file [`Backup::read`] returns at once.
pub const BACKUP_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// Reads of a backup's source are repeated until two agree, at most this
/// many times: a copy has no checksum of its own to catch a bad read with,
/// and a WAL frame read wrongly would look like a torn tail to the copy's
/// recovery, cutting acknowledged commits silently.
const READ_ATTEMPTS_MAX: u32 = 6;

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// Its name in the database directory (see [`is_backup_file_name`]).
    pub name: String,
    /// Its length in the copy.
    pub length: u64,
    /// The bytes to copy from offset 0; from there to `length` the copy
    /// holds zeros.
    pub data_bytes: u64,
}

/// What a backup holds: the pinned superblock, the LSN through which it
/// holds every commit, and its files in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The pinned superblock's generation.
    pub generation: u64,
    /// Its checkpoint LSN: the copy's recovery replays the WAL after it.
    pub checkpoint_lsn: u64,
    /// Every commit at or below it is in the copy; every commit answered
    /// before the backup began is at or below it.
    pub end_lsn: u64,
    /// The files of the copy, in order.
    pub files: Vec<BackupFile>,
}

/// Where a file's bytes come from.
enum Source<F> {
    /// A file of the database, read while the pin keeps its bytes; reads
    /// past its end are zeros (`data.pages` may have been cut below the
    /// pinned page count: those pages are free in the pinned superblock).
    File { file: F, path: PathBuf },
    /// Made from the pinned state (the superblocks).
    Bytes(Vec<u8>),
}

/// A consistent copy of an open database in progress: what it pins, and
/// its files. Reading them with [`Backup::read`] while writers, checkpoints
/// and value-log GC run gives the database as of the backup's start.
/// Dropping it releases the pin.
pub struct Backup<E: Env> {
    store: Arc<Store<E>>,
    files: Vec<BackupFile>,
    sources: Vec<Source<E::File>>,
    generation: u64,
    checkpoint_lsn: u64,
    end_lsn: u64,
}

impl<E: Env> Drop for Backup<E> {
    fn drop(&mut self) {
        self.store.unpin();
    }
}

impl<E: Env> Backup<E> {
    /// The files to copy, in order.
    pub fn files(&self) -> &[BackupFile] {
        &self.files
    }

    /// What the backup holds, to tell a remote client.
    pub fn info(&self) -> BackupInfo {
        BackupInfo {
            generation: self.generation,
            checkpoint_lsn: self.checkpoint_lsn,
            end_lsn: self.end_lsn,
            files: self.files.clone(),
        }
    }

    /// The pinned superblock's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The pinned superblock's checkpoint LSN: the copy's recovery replays
    /// the WAL after it.
    pub fn checkpoint_lsn(&self) -> u64 {
        self.checkpoint_lsn
    }

    /// Every commit at or below this LSN is in the copy; every commit
    /// answered before the backup began is at or below it.
    pub fn end_lsn(&self) -> u64 {
        self.end_lsn
    }

    /// Up to `len` bytes (at most [`BACKUP_CHUNK_BYTES_MAX`]) of file
    /// `index` from `offset`, never past its `data_bytes`; empty at or past
    /// the end.
    pub async fn read(&self, index: usize, offset: u64, len: usize) -> Result<Vec<u8>, DbError> {
        let (Some(meta), Some(source)) = (self.files.get(index), self.sources.get(index)) else {
            return Err(DbError::Backup(format!(
                "the backup has {} files; there is no file {index}",
                self.files.len()
            )));
        };
        let end = meta
            .data_bytes
            .min(offset.saturating_add(len.min(BACKUP_CHUNK_BYTES_MAX) as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        let want = (end - offset) as usize;
        match source {
            Source::Bytes(bytes) => Ok(bytes[offset as usize..end as usize].to_vec()),
            Source::File { file, path } => {
                let mut bytes = read_agreed(file, path, offset, want).await?;
                if bytes.len() < want {
                    if meta.name != PAGES_FILE {
                        return Err(DbError::Backup(format!(
                            "{} ended at {} bytes while pinned, {} expected",
                            path.display(),
                            offset + bytes.len() as u64,
                            meta.data_bytes
                        )));
                    }
                    bytes.resize(want, 0);
                }
                Ok(bytes)
            }
        }
    }
}

/// Reads `len` bytes at `offset` until two reads in a row agree.
async fn read_agreed<F: File>(
    file: &F,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, DbError> {
    let failed = |e| DbError::Store(StoreError::io("read for backup", path, e));
    let mut last = file.read_at(offset, len).await.map_err(failed)?;
    for _ in 1..READ_ATTEMPTS_MAX {
        let again = file.read_at(offset, len).await.map_err(failed)?;
        if again == last {
            return Ok(last);
        }
        last = again;
    }
    Err(DbError::Backup(format!(
        "{} read differently {READ_ATTEMPTS_MAX} times in a row at offset {offset}",
        path.display()
    )))
}

/// Whether `name` is a file a backup may hold: a name the database itself
/// writes, never a path. A copy's writer refuses any other (a hostile or
/// broken server must not make it write outside its directory).
pub fn is_backup_file_name(name: &str) -> bool {
    if [MANIFEST_FILE, PAGES_FILE, DATA_LOSS_FILE]
        .into_iter()
        .chain(SUPERBLOCK_FILES)
        .any(|known| known == name)
    {
        return true;
    }
    matches!(
        crate::log::segment::classify_name(name),
        crate::log::segment::NameKind::Segment(id) if segment_name(id) == name
    )
}

impl<E: Env> Db<E> {
    /// Starts an online backup (design 12): checkpoints, pins the durable
    /// superblock and every WAL segment, and makes everything written so
    /// far durable; the returned [`Backup`] lists and reads the files of a
    /// consistent copy while writers keep running. One backup at a time
    /// ([`DbError::BackupInProgress`]).
    pub async fn backup(&self) -> Result<Backup<E>, DbError> {
        // A fresh checkpoint leaves less WAL to copy and to replay. A full
        // disk refuses it; the durable one serves as well.
        // Broken on purpose (tests only): with no checkpoint (and no sync,
        // `wal/writer.rs`), written `async` commits may be left out.
        if !crate::sabotage::sabotaged!(self, BackupWithoutSync) {
            match self.checkpoint().await {
                Ok(_) | Err(DbError::DiskFull(_)) => {}
                Err(error) => return Err(error),
            }
        }
        let superblock = self.store.pin()?.ok_or(DbError::BackupInProgress)?;
        // From here the pin is released on every path, with the backup.
        let mut backup = Backup {
            store: Arc::clone(&self.store),
            files: Vec::new(),
            sources: Vec::new(),
            generation: superblock.generation,
            checkpoint_lsn: superblock.checkpoint_lsn,
            end_lsn: 0,
        };
        let view = self.wal.copy_view().await?;
        backup.end_lsn = view.durable_lsn;
        let env = &self.store.env;
        let dir = &self.dir;
        backup.add_file(env, dir, MANIFEST_FILE, None).await?;
        let page_bytes = u64::from(self.store.manifest().page_bytes);
        let pages = superblock.page_count * page_bytes;
        backup.add_file(env, dir, PAGES_FILE, Some(pages)).await?;
        // The pinned superblock in its own slot, and the same tree under
        // the neighbouring generation in the other (one older; one newer
        // for generation 0, which a torn slot can leave durable): either
        // way the copy opens the pinned tree.
        let other = Superblock {
            generation: superblock
                .generation
                .checked_sub(1)
                .unwrap_or(superblock.generation + 1),
            ..superblock
        };
        for written in [superblock, other] {
            backup.add_bytes(Superblock::file_name(written.generation), written.encode());
        }
        let names = env
            .list(dir)
            .await
            .map_err(|e| DbError::Store(StoreError::io("list", dir, e)))?;
        if names.iter().any(|name| name == DATA_LOSS_FILE) {
            backup.add_file(env, dir, DATA_LOSS_FILE, None).await?;
        }
        for (id, cut) in view.segments {
            backup.add_segment(env, dir, &segment_name(id), cut).await?;
        }
        Ok(backup)
    }
}

impl<E: Env> Backup<E> {
    /// Adds file `name` of `dir`: `pages` bytes of it (zeros past its end),
    /// or all of it.
    async fn add_file(
        &mut self,
        env: &E,
        dir: &Path,
        name: &str,
        pages: Option<u64>,
    ) -> Result<(), DbError> {
        let (file, path, length) = open_source(env, dir, name).await?;
        let length = pages.unwrap_or(length);
        self.push(name, length, length, Source::File { file, path });
        Ok(())
    }

    /// Adds WAL segment `name`, its bytes up to `cut` (zeros after) or all
    /// of them.
    async fn add_segment(
        &mut self,
        env: &E,
        dir: &Path,
        name: &str,
        cut: Option<u64>,
    ) -> Result<(), DbError> {
        let (file, path, length) = open_source(env, dir, name).await?;
        let data_bytes = cut.unwrap_or(length).min(length);
        self.push(name, length, data_bytes, Source::File { file, path });
        Ok(())
    }

    fn add_bytes(&mut self, name: &str, bytes: Vec<u8>) {
        let length = bytes.len() as u64;
        self.push(name, length, length, Source::Bytes(bytes));
    }

    fn push(&mut self, name: &str, length: u64, data_bytes: u64, source: Source<E::File>) {
        debug_assert!(is_backup_file_name(name), "{name} is a database file");
        self.files.push(BackupFile {
            name: name.to_owned(),
            length,
            data_bytes,
        });
        self.sources.push(source);
    }
}

async fn open_source<E: Env>(
    env: &E,
    dir: &Path,
    name: &str,
) -> Result<(E::File, PathBuf, u64), DbError> {
    let path = dir.join(name);
    let io = |op, e| DbError::Store(StoreError::io(op, &path, e));
    let file = env
        .open(&path, OpenMode::Existing)
        .await
        .map_err(|e| io("open for backup", e))?;
    let length = file.len().await.map_err(|e| io("length", e))?;
    Ok((file, path, length))
}

/// Writes a backup's files into a new directory: each file is created,
/// written, extended with zeros to its length and synced, and the
/// directory synced at the end. Refuses a directory that holds any file,
/// and any name [`is_backup_file_name`] refuses.
pub struct BackupWriter<E: Env> {
    env: E,
    dir: PathBuf,
}

impl<E: Env> BackupWriter<E> {
    /// Creates `dir` (durably) for a copy; it must not hold any file.
    pub async fn create(env: E, dir: impl AsRef<Path>) -> Result<Self, DbError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |op, e| DbError::Backup(format!("{op} {}: {e}", dir.display()));
        create_dir_durably(&env, &dir)
            .await
            .map_err(|e| io("create", e))?;
        let names = env.list(&dir).await.map_err(|e| io("list", e))?;
        if let Some(name) = names.first() {
            return Err(DbError::Backup(format!(
                "{} already holds files ({name}, ...); a backup goes into an empty directory",
                dir.display()
            )));
        }
        Ok(BackupWriter { env, dir })
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates file `meta` (empty) to write its bytes into.
    pub async fn create_file(&self, meta: &BackupFile) -> Result<E::File, DbError> {
        if !is_backup_file_name(&meta.name) {
            return Err(DbError::Backup(format!(
                "`{}` is not a database file name; refusing to write it",
                meta.name
            )));
        }
        let path = self.dir.join(&meta.name);
        self.env
            .open(&path, OpenMode::CreateNew)
            .await
            .map_err(|e| DbError::Backup(format!("create {}: {e}", path.display())))
    }

    /// Extends `file` with zeros to `meta.length` and syncs it.
    pub async fn finish_file(&self, file: &E::File, meta: &BackupFile) -> Result<(), DbError> {
        let path = self.dir.join(&meta.name);
        let io = |op, e| DbError::Backup(format!("{op} {}: {e}", path.display()));
        file.set_len(meta.length)
            .await
            .map_err(|e| io("extend", e))?;
        file.sync_data().await.map_err(|e| io("sync", e))
    }

    /// Makes the files' names durable.
    pub async fn finish(&self) -> Result<(), DbError> {
        self.env
            .sync_dir(&self.dir)
            .await
            .map_err(|e| DbError::Backup(format!("sync {}: {e}", self.dir.display())))
    }

    /// Copies every file of `backup`, chunk by chunk, then syncs the
    /// directory.
    pub async fn copy_all(&self, backup: &Backup<E>) -> Result<(), DbError> {
        for (index, meta) in backup.files().iter().enumerate() {
            let file = self.create_file(meta).await?;
            let mut offset = 0;
            while offset < meta.data_bytes {
                let chunk = backup.read(index, offset, BACKUP_CHUNK_BYTES_MAX).await?;
                assert!(!chunk.is_empty(), "a read before the end returns bytes");
                file.write_at(offset, &chunk).await.map_err(|e| {
                    DbError::Backup(format!(
                        "write {}: {e}",
                        self.dir.join(&meta.name).display()
                    ))
                })?;
                offset += chunk.len() as u64;
            }
            self.finish_file(&file, meta).await?;
        }
        self.finish().await
    }
}

/// What [`restore`] installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Keys in the restored database.
    pub keys: u64,
}

/// Installs the backup in `from` as a new database in `to` (offline: no
/// process may have either open), then opens it (its recovery replays the
/// WAL the backup holds), validates it and closes it. Refuses a `to` that
/// holds any file, so it never overwrites a database, and a `from` with
/// no MANIFEST.
pub async fn restore<E: Env>(
    env: E,
    from: impl AsRef<Path>,
    to: impl AsRef<Path>,
) -> Result<Restored, DbError> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let io = |op: &str, path: &Path, e: std::io::Error| {
        DbError::Backup(format!("{op} {}: {e}", path.display()))
    };
    let names = env.list(from).await.map_err(|e| io("list", from, e))?;
    if !names.iter().any(|name| name == MANIFEST_FILE) {
        return Err(DbError::Backup(format!(
            "{} holds no MANIFEST: not a backup",
            from.display()
        )));
    }
    let writer = BackupWriter::create(env.clone(), to).await?;
    let mut restored = Restored {
        files: 0,
        bytes: 0,
        keys: 0,
    };
    for name in names.iter().filter(|name| is_backup_file_name(name)) {
        let source_path = from.join(name);
        let source = env
            .open(&source_path, OpenMode::Existing)
            .await
            .map_err(|e| io("open", &source_path, e))?;
        let length = source
            .len()
            .await
            .map_err(|e| io("length", &source_path, e))?;
        let meta = BackupFile {
            name: name.clone(),
            length,
            data_bytes: length,
        };
        let file = writer.create_file(&meta).await?;
        let mut offset = 0;
        while offset < length {
            let want = (length - offset).min(BACKUP_CHUNK_BYTES_MAX as u64) as usize;
            let chunk = read_agreed(&source, &source_path, offset, want).await?;
            if chunk.is_empty() {
                break;
            }
            file.write_at(offset, &chunk)
                .await
                .map_err(|e| io("write", &to.join(name), e))?;
            offset += chunk.len() as u64;
        }
        writer.finish_file(&file, &meta).await?;
        restored.files += 1;
        restored.bytes += length;
    }
    writer.finish().await?;
    let options = DbOptions {
        create_if_missing: false,
        ..DbOptions::default()
    };
    let db = Db::open(env, to, options).await?;
    let report = db.validate().await?;
    if let Some(finding) = report.findings.first() {
        return Err(DbError::Backup(format!(
            "the restored database does not validate: {finding:?}"
        )));
    }
    restored.keys = db.stats().store.keys;
    db.close().await?;
    Ok(restored)
}
