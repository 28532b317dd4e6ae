//! The simulated disk: a filesystem that remembers what is durable and what
//! is only in the page cache, and is adversarial about the difference.
//!
//! Invariants kept here:
//! - per file, `durable` is the image a power loss would leave if nothing
//!   unsynced survived, `current` is what reads see, and `pending` is the
//!   ordered list of writes and length changes between them;
//!   `durable` + `pending` applied in order == `current`, except after a
//!   failed sync (below);
//! - a power loss resolves each pending write independently: kept, lost, or
//!   torn (a random subset of its 512-byte sectors lands, or, with
//!   `write_garbled`, each 4 KiB block it touches is written, left, or
//!   garbled whole, neighbouring bytes included); name changes not
//!   covered by a directory sync are lost from a random point on, per
//!   directory, as a journaling filesystem would;
//! - a failed `fdatasync` behaves as Linux does after an I/O error: the
//!   pending writes are resolved as if by a crash into the durable image and
//!   forgotten; reads then either keep returning the cached data (so a
//!   retried sync "succeeds" without making it durable) or, if the pages
//!   were evicted, what is on disk;
//! - a write that fails (ENOSPC or EIO) may have landed in part, a whole
//!   number of sectors from its start;
//! - a process kill (not a power loss) invalidates open handles and releases
//!   directory locks but keeps the page cache;
//! - a new directory's name lives in its parent like a file's: it is
//!   durable only once the parent is synced. A power loss that loses it
//!   loses everything inside it, durable or not. A root (a directory
//!   without a parent) always exists;
//! - space runs out only while another tenant fills the disk (see the
//!   `space` module): then writes that allocate (and, on a copy-on-write
//!   disk, overwrites), creates, and sometimes renames and syncs fail.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::faults::{Fault, FaultConfig, FaultCounts};
use crate::node::NodeId;
use crate::rng::SimRng;
use crate::space::{SPACE_BLOCK_BYTES, Space, allocated};
use crate::trace::Trace;

/// The file a directory lock is taken on (as in the real environment).
pub const LOCK_FILE_NAME: &str = "LOCK";
/// The unit a torn write is cut into.
pub const SECTOR_BYTES: u64 = 512;
/// The unit a drive without atomic sector writes garbles whole.
pub const GARBLE_BLOCK_BYTES: u64 = 4096;
/// A misdirected write lands up to this many sectors away.
const MISDIRECT_SECTORS_MAX: u64 = 8;

type InodeId = u64;

/// What a file operation needs besides the disk: where faults come from,
/// where they are counted, and where the trace goes.
pub(crate) struct Ctx<'a> {
    pub rng: &'a mut SimRng,
    pub faults: &'a FaultConfig,
    pub counts: &'a mut FaultCounts,
    pub trace: &'a mut Trace,
    pub now_nanos: u64,
    pub node: NodeId,
}

impl Ctx<'_> {
    /// Draws whether `fault` strikes now, counting it if so.
    fn strikes(&mut self, fault: Fault) -> bool {
        let hit = self.rng.chance(self.faults.get(fault));
        if hit {
            self.counts.add(fault);
        }
        hit
    }

    fn trace(&mut self, args: std::fmt::Arguments<'_>) {
        let node = self.node;
        self.trace
            .record(self.now_nanos, format_args!("{node} disk {args}"));
    }
}

/// An open file: which inode, opened in which life of the node.
#[derive(Clone, Debug)]
pub(crate) struct Handle {
    pub inode: InodeId,
    pub epoch: u64,
    pub path: PathBuf,
}

#[derive(Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// A failed sync kept the page cache ahead of a disk that will never
    /// get it: `durable` + `pending` no longer gives `current` until the
    /// next power loss.
    diverged: bool,
    /// Sectors (by index) the medium cannot read: every read touching one
    /// fails until a write covers it whole.
    unreadable: BTreeSet<u64>,
}

impl Inode {
    /// The module's first invariant, checked after every operation on the
    /// bytes it touched: `durable` with `pending` replayed in order gives
    /// `current`, in length and in `[start, end)`. Replaying one window
    /// costs the pending list, not the file.
    fn check(&self, start: u64, end: u64) {
        if self.diverged {
            return;
        }
        let mut len = self.durable.len() as u64;
        let end = end.min(self.current.len() as u64);
        let window = start..end.max(start);
        // The window's bytes as the durable image holds them (zeros past
        // its end), then each pending change clipped to the window.
        let mut image = vec![0u8; (window.end - window.start) as usize];
        let durable_end = window.end.min(len);
        if window.start < durable_end {
            image[..(durable_end - window.start) as usize]
                .copy_from_slice(&self.durable[window.start as usize..durable_end as usize]);
        }
        for op in &self.pending {
            match op {
                Pending::Write { offset, data } => {
                    let (from, to) = (*offset, offset + data.len() as u64);
                    let (lo, hi) = (window.start.max(from), window.end.min(to));
                    if lo < hi {
                        image[(lo - window.start) as usize..(hi - window.start) as usize]
                            .copy_from_slice(&data[(lo - from) as usize..(hi - from) as usize]);
                    }
                    len = len.max(to);
                }
                Pending::SetLen(new_len) => {
                    // Bytes cut off read as zeros if the file grows again.
                    let lo = window.start.max(*new_len);
                    if lo < window.end {
                        image[(lo - window.start) as usize..].fill(0);
                    }
                    len = *new_len;
                }
            }
        }
        assert_eq!(
            len,
            self.current.len() as u64,
            "simulated disk: durable + pending gives another length than reads see"
        );
        assert!(
            image.as_slice() == &self.current[window.start as usize..window.end as usize],
            "simulated disk: durable + pending differs from what reads see in [{}, {})",
            window.start,
            window.end
        );
    }
}

enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

enum DirOp {
    /// A directory made inside its parent.
    Mkdir {
        path: PathBuf,
    },
    Link {
        path: PathBuf,
        inode: InodeId,
    },
    Unlink {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: InodeId,
    },
}

impl DirOp {
    fn touches(&self, dir: &Path) -> bool {
        let parent_is = |p: &Path| p.parent() == Some(dir);
        match self {
            DirOp::Mkdir { path } | DirOp::Link { path, .. } | DirOp::Unlink { path } => {
                parent_is(path)
            }
            DirOp::Rename { from, to, .. } => parent_is(from) || parent_is(to),
        }
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
        match self {
            DirOp::Mkdir { path } | DirOp::Link { path, .. } | DirOp::Unlink { path } => {
                vec![parent(path)]
            }
            DirOp::Rename { from, to, .. } => vec![parent(from), parent(to)],
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, InodeId>, dirs: &mut BTreeSet<PathBuf>) {
        match self {
            DirOp::Mkdir { path } => {
                dirs.insert(path.clone());
            }
            DirOp::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to, inode } => {
                names.remove(from);
                names.insert(to.clone(), *inode);
            }
        }
    }
}

/// One node's disk.
#[derive(Default)]
pub(crate) struct Disk {
    /// The directories reads see.
    dirs: BTreeSet<PathBuf>,
    /// The directories as of the last syncs of their parents.
    durable_dirs: BTreeSet<PathBuf>,
    /// The namespace reads see.
    names: BTreeMap<PathBuf, InodeId>,
    /// The namespace as of the last directory syncs.
    durable_names: BTreeMap<PathBuf, InodeId>,
    /// Name changes not yet covered by a directory sync, oldest first.
    dir_ops: Vec<DirOp>,
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    /// Locked `LOCK` files (by inode) and the token of the lock's holder.
    locks: BTreeMap<InodeId, u64>,
    next_token: u64,
    /// Incremented by every crash and kill; handles of older lives are dead.
    epoch: u64,
    /// What another tenant holds of the disk.
    space: Space,
}

/// A simulated EIO. Errors carry fixed texts (not the C library's
/// `strerror`), so traces hash the same on every platform.
fn eio(what: &str) -> io::Error {
    io::Error::other(format!("simulated EIO: {what}"))
}

/// A simulated ENOSPC, with the kind the engine checks for.
fn enospc() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "simulated ENOSPC: no space left on device",
    )
}

/// How many leading bytes of a failing write at `offset` landed anyway: a
/// random whole number of sectors (possibly none, possibly all but the
/// last).
fn landed_prefix(ctx: &mut Ctx<'_>, offset: u64, len: usize) -> usize {
    if len == 0 || !ctx.rng.chance(0.5) {
        return 0;
    }
    let end = offset + len as u64;
    let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
    if first_boundary >= end {
        return 0;
    }
    let sectors = (end - first_boundary).div_ceil(SECTOR_BYTES);
    let boundary = first_boundary + ctx.rng.below(sectors) * SECTOR_BYTES;
    (boundary - offset) as usize
}

impl Disk {
    /// Bytes the files reachable by name occupy.
    fn used(&self) -> u64 {
        let inodes: BTreeSet<InodeId> = self.names.values().copied().collect();
        inodes
            .iter()
            .filter_map(|id| self.inodes.get(id))
            .map(|inode| allocated(inode.current.len() as u64))
            .sum()
    }

    /// Bytes free (unbounded for practical purposes unless filled).
    fn free(&self) -> u64 {
        if self.space.filled() {
            self.space.free(self.used())
        } else {
            u64::MAX
        }
    }

    /// Whether an operation that needs a block (a new name, a directory
    /// entry) finds none, on a filled disk.
    fn no_block_free(&self) -> bool {
        self.space.filled() && self.free() < SPACE_BLOCK_BYTES
    }

    /// Another tenant takes all but `slack` bytes of the free space;
    /// `quota` reports running out as EDQUOT.
    pub(crate) fn fill(&mut self, ctx: &mut Ctx<'_>, slack: u64, quota: bool) {
        let used = self.used();
        self.space.fill(used, slack, quota);
        ctx.counts.add(Fault::DiskFilled);
        ctx.trace(format_args!(
            "FAULT disk_filled: {slack} bytes left{}",
            if quota { " (quota)" } else { "" }
        ));
    }

    /// The other tenant gives its space back; returns whether it held any.
    pub(crate) fn release_space(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let released = self.space.release();
        if released {
            ctx.trace(format_args!("disk space given back"));
        }
        released
    }

    /// Whether another tenant holds space now.
    pub(crate) fn filled(&self) -> bool {
        self.space.filled()
    }

    /// On a filled disk, whether a write of `len` bytes at `offset` to
    /// `handle` finds room; if not, how many of its leading bytes fit (a
    /// whole number of sectors; none on a copy-on-write disk, which
    /// allocates the write's blocks as one extent).
    fn room_for_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: &Handle,
        offset: u64,
        len: usize,
    ) -> io::Result<Option<usize>> {
        if !self.space.filled() || len == 0 {
            return Ok(None);
        }
        let size = self.inode(handle)?.current.len() as u64;
        let end = offset + len as u64;
        let mut needed = allocated(end).saturating_sub(allocated(size));
        let overwritten_end = end.min(size);
        let cow = offset < overwritten_end
            && ctx.faults.get(Fault::DiskCow) > 0.0
            && ctx.strikes(Fault::DiskCow);
        if cow {
            needed += allocated(overwritten_end) - offset / SPACE_BLOCK_BYTES * SPACE_BLOCK_BYTES;
        }
        let free = self.free();
        if needed <= free {
            return Ok(None);
        }
        if cow {
            return Ok(Some(0));
        }
        let fits_end = (allocated(size) + free).max(offset);
        let fits = (fits_end - offset).min(len as u64 - 1);
        let landed_end = (offset + fits) / SECTOR_BYTES * SECTOR_BYTES;
        Ok(Some(landed_end.saturating_sub(offset) as usize))
    }

    fn inode(&mut self, handle: &Handle) -> io::Result<&mut Inode> {
        if handle.epoch != self.epoch {
            return Err(io::Error::other(format!(
                "stale handle for {}: the process that opened it died",
                handle.path.display()
            )));
        }
        Ok(self
            .inodes
            .get_mut(&handle.inode)
            .expect("an inode outlives every handle of its life"))
    }

    fn parent_exists(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.dirs.contains(dir) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory holds {}", path.display()),
            )),
        }
    }

    /// A new empty file named `path` (a name durable only once its
    /// directory is synced); fails if a full disk has no block for it.
    fn create_file(&mut self, ctx: &mut Ctx<'_>, path: &Path, op: &str) -> io::Result<InodeId> {
        if self.no_block_free() {
            ctx.trace(format_args!("{op} {} FAULT no space", path.display()));
            return Err(self.space.error(op));
        }
        let inode = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(inode, Inode::default());
        self.names.insert(path.to_path_buf(), inode);
        self.dir_ops.push(DirOp::Link {
            path: path.to_path_buf(),
            inode,
        });
        Ok(inode)
    }

    pub(crate) fn open(
        &mut self,
        ctx: &mut Ctx<'_>,
        path: &Path,
        create: bool,
    ) -> io::Result<Handle> {
        self.parent_exists(path)?;
        if ctx.strikes(Fault::IoError) {
            ctx.trace(format_args!("open {} FAULT io_error", path.display()));
            return Err(eio("open"));
        }
        let inode = match (self.names.get(path), create) {
            (Some(&inode), false) => inode,
            (None, false) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", path.display()),
                ));
            }
            (Some(_), true) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            (None, true) => self.create_file(ctx, path, "create")?,
        };
        ctx.trace(format_args!(
            "open {} create={create} -> inode {inode}",
            path.display()
        ));
        Ok(Handle {
            inode,
            epoch: self.epoch,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn read(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: &Handle,
        offset: u64,
        len: usize,
    ) -> io::Result<Vec<u8>> {
        self.inode(handle)?;
        if ctx.strikes(Fault::IoError) {
            ctx.trace(format_args!(
                "read {} @{offset}+{len} FAULT io_error",
                handle.path.display()
            ));
            return Err(eio("read"));
        }
        let inode = self.inode(handle)?;
        let size = inode.current.len() as u64;
        let read_end = offset.saturating_add(len as u64).min(size);
        if offset < read_end
            && let Some(&sector) = inode
                .unreadable
                .range(offset / SECTOR_BYTES..read_end.div_ceil(SECTOR_BYTES))
                .next()
        {
            ctx.trace(format_args!(
                "read {} @{offset}+{len} FAULT unreadable sector {sector}",
                handle.path.display()
            ));
            return Err(eio("unreadable sector (medium error)"));
        }
        let start = offset.min(size) as usize;
        let end = offset.saturating_add(len as u64).min(size) as usize;
        let mut data = inode.current[start..end].to_vec();
        let mut note = "";
        if !data.is_empty() && ctx.strikes(Fault::ReadCorrupt) {
            let bit = ctx.rng.below(data.len() as u64 * 8);
            data[(bit / 8) as usize] ^= 1 << (bit % 8);
            note = " FAULT read_corrupt";
        }
        ctx.trace(format_args!(
            "read {} @{offset}+{len} -> {}{note}",
            handle.path.display(),
            data.len()
        ));
        Ok(data)
    }

    pub(crate) fn write(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: &Handle,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        self.inode(handle)?;
        let failures: [(Fault, fn() -> io::Error); 2] =
            [(Fault::DiskFull, enospc), (Fault::IoError, || eio("write"))];
        for (fault, error) in failures {
            if ctx.strikes(fault) {
                let landed = landed_prefix(ctx, offset, data.len());
                ctx.trace(format_args!(
                    "write {} @{offset}+{} FAULT {} after {landed} bytes",
                    handle.path.display(),
                    data.len(),
                    fault.name()
                ));
                self.land(handle, offset, &data[..landed])?;
                return Err(error());
            }
        }
        if let Some(landed) = self.room_for_write(ctx, handle, offset, data.len())? {
            ctx.trace(format_args!(
                "write {} @{offset}+{} FAULT no space after {landed} bytes",
                handle.path.display(),
                data.len()
            ));
            self.land(handle, offset, &data[..landed])?;
            return Err(self.space.error("write"));
        }
        // Checked only when switched on, so seeds without it draw the same
        // numbers as before it existed.
        if ctx.faults.get(Fault::WriteStale) > 0.0 && ctx.strikes(Fault::WriteStale) {
            ctx.trace(format_args!(
                "write {} @{offset}+{} FAULT write_stale (dropped)",
                handle.path.display(),
                data.len()
            ));
            return Ok(());
        }
        let mut at = offset;
        if ctx.strikes(Fault::WriteMisdirected) {
            let delta = ctx.rng.between(1, MISDIRECT_SECTORS_MAX) * SECTOR_BYTES;
            at = if ctx.rng.chance(0.5) && offset >= delta {
                offset - delta
            } else {
                offset + delta
            };
            ctx.trace(format_args!(
                "write {} @{offset}+{} FAULT write_misdirected to @{at}",
                handle.path.display(),
                data.len()
            ));
        } else {
            ctx.trace(format_args!(
                "write {} @{offset}+{}",
                handle.path.display(),
                data.len()
            ));
        }
        self.land(handle, at, data)
    }

    /// `data` lands at `at` in the page cache (pending until synced); a
    /// sector it covers whole is remapped, readable again.
    fn land(&mut self, handle: &Handle, at: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let inode = self.inode(handle)?;
        apply_write(&mut inode.current, at, data);
        inode.pending.push(Pending::Write {
            offset: at,
            data: data.to_vec(),
        });
        inode.check(at, at + data.len() as u64);
        let covered = at.div_ceil(SECTOR_BYTES)..(at + data.len() as u64) / SECTOR_BYTES;
        if !covered.is_empty() {
            inode.unreadable.retain(|sector| !covered.contains(sector));
        }
        Ok(())
    }

    pub(crate) fn set_len(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: &Handle,
        len: u64,
    ) -> io::Result<()> {
        let grows = len > self.inode(handle)?.current.len() as u64;
        if grows && ctx.strikes(Fault::DiskFull) {
            ctx.trace(format_args!(
                "set_len {} {len} FAULT disk_full",
                handle.path.display()
            ));
            return Err(enospc());
        }
        if grows {
            let before = allocated(self.inode(handle)?.current.len() as u64);
            if allocated(len) - before > self.free() {
                ctx.trace(format_args!(
                    "set_len {} {len} FAULT no space",
                    handle.path.display()
                ));
                return Err(self.space.error("extend"));
            }
        }
        ctx.trace(format_args!("set_len {} {len}", handle.path.display()));
        let inode = self.inode(handle)?;
        let before = inode.current.len() as u64;
        inode.current.resize(len as usize, 0);
        inode.pending.push(Pending::SetLen(len));
        // Sectors cut off are gone, unreadable or not.
        inode
            .unreadable
            .retain(|sector| sector * SECTOR_BYTES < len);
        inode.check(before.min(len), before.max(len));
        Ok(())
    }

    pub(crate) fn len(&mut self, handle: &Handle) -> io::Result<u64> {
        Ok(self.inode(handle)?.current.len() as u64)
    }

    pub(crate) fn sync_data(&mut self, ctx: &mut Ctx<'_>, handle: &Handle) -> io::Result<()> {
        let dirty = !self.inode(handle)?.pending.is_empty();
        // Delayed allocation: on a full disk, writeback may find no blocks
        // for data the writes were allowed to cache.
        let no_room = dirty && self.no_block_free() && ctx.rng.chance(0.25);
        if no_room || ctx.strikes(Fault::FsyncError) {
            // Linux after a writeback error: the dirty data is resolved as a
            // crash would, the error is reported once, and the pages are
            // either kept (still readable, never to be written) or evicted
            // (reads now show what is on disk).
            let evict = ctx.rng.chance(0.5);
            ctx.trace(format_args!(
                "sync_data {} FAULT {} ({})",
                handle.path.display(),
                if no_room {
                    "no space in writeback"
                } else {
                    "fsync_error"
                },
                if evict { "cache evicted" } else { "cache kept" }
            ));
            let inode = self.inode(handle)?;
            let pending = std::mem::take(&mut inode.pending);
            let mut durable = std::mem::take(&mut inode.durable);
            resolve_at_crash(ctx, &mut durable, pending);
            let inode = self.inode(handle)?;
            if evict {
                inode.current = durable.clone();
            } else {
                inode.diverged = true;
            }
            inode.durable = durable;
            return Err(if no_room {
                self.space.error("fdatasync writeback")
            } else {
                eio("fdatasync")
            });
        }
        let inode = self.inode(handle)?;
        let writes = inode.pending.len();
        for op in std::mem::take(&mut inode.pending) {
            apply_pending(&mut inode.durable, op);
        }
        // With nothing pending, durable is current: the lengths at least
        // (comparing every byte per sync would cost the whole file).
        inode.check(0, 0);
        ctx.trace(format_args!(
            "sync_data {} ({writes} pending)",
            handle.path.display()
        ));
        Ok(())
    }

    pub(crate) fn create_dir_all(&mut self, ctx: &mut Ctx<'_>, dir: &Path) -> io::Result<()> {
        for ancestor in dir.ancestors() {
            if ancestor.as_os_str().is_empty() {
                continue;
            }
            if self.names.contains_key(ancestor) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", ancestor.display()),
                ));
            }
        }
        // Outermost first, as mkdir -p makes them.
        let ancestors: Vec<&Path> = dir
            .ancestors()
            .filter(|ancestor| !ancestor.as_os_str().is_empty())
            .collect();
        if self.no_block_free() && ancestors.iter().any(|a| !self.dirs.contains(*a)) {
            ctx.trace(format_args!(
                "create_dir_all {} FAULT no space",
                dir.display()
            ));
            return Err(self.space.error("mkdir"));
        }
        for ancestor in ancestors.into_iter().rev() {
            if !self.dirs.insert(ancestor.to_path_buf()) {
                continue;
            }
            match ancestor.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => {
                    self.dir_ops.push(DirOp::Mkdir {
                        path: ancestor.to_path_buf(),
                    });
                }
                // A root always exists.
                _ => {
                    self.durable_dirs.insert(ancestor.to_path_buf());
                }
            }
        }
        ctx.trace(format_args!("create_dir_all {}", dir.display()));
        Ok(())
    }

    pub(crate) fn list(&mut self, ctx: &mut Ctx<'_>, dir: &Path) -> io::Result<Vec<String>> {
        if !self.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory {}", dir.display()),
            ));
        }
        if ctx.strikes(Fault::IoError) {
            ctx.trace(format_args!("list {} FAULT io_error", dir.display()));
            return Err(eio("readdir"));
        }
        let mut names: Vec<String> = self
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        ctx.trace(format_args!(
            "list {} -> {}",
            dir.display(),
            names.join(" ")
        ));
        Ok(names)
    }

    pub(crate) fn rename(&mut self, ctx: &mut Ctx<'_>, from: &Path, to: &Path) -> io::Result<()> {
        self.parent_exists(to)?;
        if ctx.strikes(Fault::IoError) {
            ctx.trace(format_args!("rename {} FAULT io_error", from.display()));
            return Err(eio("rename"));
        }
        // A directory entry may need a new block.
        if self.no_block_free() && ctx.rng.chance(0.5) {
            ctx.trace(format_args!("rename {} FAULT no space", from.display()));
            return Err(self.space.error("rename"));
        }
        let inode = self.names.remove(from).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist", from.display()),
            )
        })?;
        self.names.insert(to.to_path_buf(), inode);
        self.dir_ops.push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            inode,
        });
        ctx.trace(format_args!(
            "rename {} -> {}",
            from.display(),
            to.display()
        ));
        Ok(())
    }

    pub(crate) fn remove(&mut self, ctx: &mut Ctx<'_>, path: &Path) -> io::Result<()> {
        if ctx.strikes(Fault::IoError) {
            ctx.trace(format_args!("remove {} FAULT io_error", path.display()));
            return Err(eio("unlink"));
        }
        self.names.remove(path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            )
        })?;
        self.dir_ops.push(DirOp::Unlink {
            path: path.to_path_buf(),
        });
        ctx.trace(format_args!("remove {}", path.display()));
        Ok(())
    }

    pub(crate) fn sync_dir(&mut self, ctx: &mut Ctx<'_>, dir: &Path) -> io::Result<()> {
        if !self.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory {}", dir.display()),
            ));
        }
        if ctx.strikes(Fault::FsyncError) {
            ctx.trace(format_args!("sync_dir {} FAULT fsync_error", dir.display()));
            return Err(eio("fsync of a directory"));
        }
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.dir_ops)
            .into_iter()
            .partition(|op| op.touches(dir));
        for op in &mine {
            op.apply(&mut self.durable_names, &mut self.durable_dirs);
        }
        self.dir_ops = others;
        ctx.trace(format_args!(
            "sync_dir {} ({} pending)",
            dir.display(),
            mine.len()
        ));
        Ok(())
    }

    /// A file holding durable bytes, drawn at random (by name, so the draw
    /// is the same on every run).
    fn durable_file_at_random(&self, ctx: &mut Ctx<'_>) -> Option<(PathBuf, InodeId)> {
        let files: Vec<(&PathBuf, &InodeId)> = self
            .names
            .iter()
            .filter(|(_, inode)| {
                self.inodes
                    .get(inode)
                    .is_some_and(|i| !i.durable.is_empty())
            })
            .collect();
        if files.is_empty() {
            return None;
        }
        let (path, inode) = files[ctx.rng.below(files.len() as u64) as usize];
        Some((path.clone(), *inode))
    }

    /// Flips one bit of one durable byte of a file drawn at random (by
    /// name, so the draw is the same on every run), on the medium: reads
    /// see it until something overwrites the byte.
    fn rot_one_bit(&mut self, ctx: &mut Ctx<'_>) {
        let Some((path, inode)) = self.durable_file_at_random(ctx) else {
            return;
        };
        let Some(file) = self.inodes.get_mut(&inode) else {
            return;
        };
        let at = ctx.rng.below(file.durable.len() as u64) as usize;
        let bit = 1u8 << ctx.rng.below(8);
        file.durable[at] ^= bit;
        // Right after a crash nothing is pending: reads see the medium.
        if let Some(byte) = file.current.get_mut(at) {
            *byte ^= bit;
        }
        ctx.trace(format_args!(
            "FAULT bit_rot {} byte {at} bit {}",
            path.display(),
            bit.trailing_zeros()
        ));
    }

    /// Makes one sector of durable data of a file drawn at random (by
    /// name) unreadable, until a write covers it whole.
    fn lose_one_sector(&mut self, ctx: &mut Ctx<'_>) {
        let Some((path, inode)) = self.durable_file_at_random(ctx) else {
            return;
        };
        let Some(file) = self.inodes.get_mut(&inode) else {
            return;
        };
        let sectors = (file.durable.len() as u64).div_ceil(SECTOR_BYTES);
        let sector = ctx.rng.below(sectors);
        file.unreadable.insert(sector);
        ctx.trace(format_args!(
            "FAULT sector_unreadable {} sector {sector}",
            path.display()
        ));
    }

    pub(crate) fn file_exists(&self, path: &Path) -> bool {
        self.names.contains_key(path)
    }

    /// A fingerprint of the files under `dir` (names and current bytes;
    /// `LOCK` and `*.tmp` files left out: taking a lock, or removing what
    /// an interrupted rename left, is no change to the data).
    pub(crate) fn fingerprint(&self, dir: &Path) -> u64 {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same on every run and platform.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (path, inode) in self.names.range(dir.to_path_buf()..) {
            if !path.starts_with(dir) {
                break;
            }
            let name = path.file_name().map(|name| name.to_string_lossy());
            if name.is_some_and(|name| name == LOCK_FILE_NAME || name.ends_with(".tmp")) {
                continue;
            }
            path.hash(&mut hasher);
            if let Some(inode) = self.inodes.get(inode) {
                inode.current.hash(&mut hasher);
            }
        }
        hasher.finish()
    }

    /// Locks `dir` as the real environment does: through a file named
    /// `LOCK` in it, created if missing (a name like any other: durable
    /// only once the directory is synced). The lock belongs to the file,
    /// not the name: a `LOCK` removed and created again is a different
    /// file, lockable while the old one is still held.
    pub(crate) fn lock_dir(&mut self, ctx: &mut Ctx<'_>, dir: &Path) -> io::Result<u64> {
        if !self.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory {}", dir.display()),
            ));
        }
        let path = dir.join(LOCK_FILE_NAME);
        let inode = match self.names.get(&path) {
            Some(&inode) => inode,
            None => self.create_file(ctx, &path, "create lock file")?,
        };
        if self.locks.contains_key(&inode) {
            ctx.trace(format_args!("lock {} -> busy", path.display()));
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another process", path.display()),
            ));
        }
        let token = self.next_token;
        self.next_token += 1;
        self.locks.insert(inode, token);
        ctx.trace(format_args!("lock {} (inode {inode})", path.display()));
        Ok(token)
    }

    pub(crate) fn unlock_dir(&mut self, token: u64) {
        self.locks.retain(|_, held| *held != token);
    }

    /// The process dies; the kernel (page cache, names) lives on.
    pub(crate) fn kill(&mut self) {
        self.epoch += 1;
        self.locks.clear();
    }

    /// Power loss: only what is durable, plus whatever of the rest the
    /// crash happens to keep, survives.
    pub(crate) fn crash(&mut self, ctx: &mut Ctx<'_>) {
        self.kill();
        // Most filesystems journal name changes in order, so a crash loses
        // a suffix of them; the contract promises no order, so half the
        // crashes lose any subset instead.
        let in_order = ctx.rng.chance(0.5);
        let mut lost_dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for op in std::mem::take(&mut self.dir_ops) {
            let dirs = op.dirs();
            if in_order && dirs.iter().any(|d| lost_dirs.contains(d)) {
                continue;
            }
            if ctx.strikes(Fault::DirOpLost) {
                lost_dirs.extend(dirs);
                continue;
            }
            op.apply(&mut self.durable_names, &mut self.durable_dirs);
        }
        // A directory whose own name was lost takes everything in it along:
        // parents sort before their children, so one pass in order keeps a
        // directory only if its parent was kept.
        let mut kept: BTreeSet<PathBuf> = BTreeSet::new();
        for dir in std::mem::take(&mut self.durable_dirs) {
            let rooted = match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => kept.contains(parent),
                _ => true,
            };
            if rooted {
                kept.insert(dir);
            }
        }
        self.durable_names
            .retain(|path, _| path.parent().is_some_and(|parent| kept.contains(parent)));
        self.durable_dirs = kept.clone();
        self.dirs = kept;
        self.names = self.durable_names.clone();
        let alive: BTreeSet<InodeId> = self.names.values().copied().collect();
        self.inodes.retain(|id, _| alive.contains(id));
        for inode in self.inodes.values_mut() {
            let pending = std::mem::take(&mut inode.pending);
            let mut durable = std::mem::take(&mut inode.durable);
            resolve_at_crash(ctx, &mut durable, pending);
            inode.current = durable.clone();
            inode.durable = durable;
            inode.diverged = false;
        }
        ctx.trace(format_args!(
            "crash: {} files survive, {} directories lost changes",
            self.names.len(),
            lost_dirs.len()
        ));
        if ctx.strikes(Fault::BitRot) {
            self.rot_one_bit(ctx);
        }
        // Drawn only when switched on, so seeds without it draw the same
        // numbers as before it existed.
        if ctx.faults.get(Fault::SectorUnreadable) > 0.0 && ctx.strikes(Fault::SectorUnreadable) {
            self.lose_one_sector(ctx);
        }
    }
}

/// Applies each of `pending` to `durable` as a crash would: kept, lost, or
/// torn at sector boundaries; a torn write may garble whole blocks.
fn resolve_at_crash(ctx: &mut Ctx<'_>, durable: &mut Vec<u8>, pending: Vec<Pending>) {
    // What earlier writes of this same resolution put in place: not
    // durable before the crash, so garbling it is no collateral damage.
    let mut landed: Vec<(u64, u64)> = Vec::new();
    for op in pending {
        if ctx.strikes(Fault::WriteLost) {
            continue;
        }
        match op {
            Pending::Write { offset, data } if ctx.strikes(Fault::WriteTorn) => {
                let end = offset + data.len() as u64;
                if ctx.strikes(Fault::WriteGarbled) {
                    garble_blocks(ctx, durable, offset, &data, &landed);
                } else {
                    let mut start = offset;
                    while start < end {
                        let sector_end = ((start / SECTOR_BYTES) + 1) * SECTOR_BYTES;
                        let stop = sector_end.min(end);
                        if ctx.rng.chance(0.5) {
                            let from = (start - offset) as usize;
                            let to = (stop - offset) as usize;
                            apply_write(durable, start, &data[from..to]);
                        }
                        start = stop;
                    }
                }
                landed.push((offset, end));
            }
            op => {
                if let Pending::Write { offset, data } = &op {
                    landed.push((*offset, *offset + data.len() as u64));
                }
                apply_pending(durable, op);
            }
        }
    }
}

/// A torn write of `data` at `offset` on a drive without atomic sector
/// writes: each block it touches is written, left alone, or garbled whole
/// (within the file). Counts as collateral damage a garbled block that
/// held durable bytes outside the write (and outside `landed`): any byte
/// of the file before the write (an earlier write put it there, zero or
/// not: a value of zeros is data too, corpus `db-402`), or a non-zero one
/// after it (past the write, zeros are what a file is extended with).
fn garble_blocks(
    ctx: &mut Ctx<'_>,
    image: &mut Vec<u8>,
    offset: u64,
    data: &[u8],
    landed: &[(u64, u64)],
) {
    let end = offset + data.len() as u64;
    let mut block = offset / GARBLE_BLOCK_BYTES * GARBLE_BLOCK_BYTES;
    while block < end {
        let block_end = block + GARBLE_BLOCK_BYTES;
        let (from, to) = (block.max(offset), block_end.min(end));
        match ctx.rng.below(3) {
            0 => apply_write(
                image,
                from,
                &data[(from - offset) as usize..(to - offset) as usize],
            ),
            1 => {}
            _ => {
                let file_end = (image.len() as u64).max(end);
                let garble_end = block_end.min(file_end);
                let collateral = (block..garble_end.min(image.len() as u64)).any(|at| {
                    (at < offset || (at >= end && image[at as usize] != 0))
                        && !landed.iter().any(|&(s, e)| at >= s && at < e)
                });
                if collateral {
                    ctx.counts.add_collateral();
                }
                let noise: Vec<u8> = (block..garble_end)
                    .map(|_| ctx.rng.next_u64() as u8)
                    .collect();
                apply_write(image, block, &noise);
            }
        }
        block = block_end;
    }
}

fn apply_pending(image: &mut Vec<u8>, op: Pending) {
    match op {
        Pending::Write { offset, data } => apply_write(image, offset, &data),
        Pending::SetLen(len) => image.resize(len as usize, 0),
    }
}

fn apply_write(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::{Inode, Pending};

    fn inode(durable: &[u8], pending: Vec<Pending>, current: &[u8]) -> Inode {
        Inode {
            current: current.to_vec(),
            durable: durable.to_vec(),
            pending,
            diverged: false,
            unreadable: std::collections::BTreeSet::new(),
        }
    }

    #[test]
    fn durable_plus_pending_replays_to_current_through_writes_and_cuts() {
        let pending = vec![
            Pending::Write {
                offset: 2,
                data: b"xyz".to_vec(),
            },
            Pending::SetLen(3),
            Pending::Write {
                offset: 5,
                data: b"q".to_vec(),
            },
        ];
        // "abcdef" -> "abxyzf" -> "abx" -> "abx\0\0q"
        let inode = inode(b"abcdef", pending, b"abx\0\0q");
        for (start, end) in [(0, 6), (2, 5), (3, 5), (5, 6), (0, 0)] {
            inode.check(start, end);
        }
    }

    #[test]
    #[should_panic(expected = "differs from what reads see")]
    fn a_current_image_the_pending_list_does_not_explain_panics() {
        let pending = vec![Pending::Write {
            offset: 1,
            data: b"z".to_vec(),
        }];
        inode(b"abc", pending, b"ayc").check(0, 3);
    }

    #[test]
    fn garbling_an_acknowledged_record_of_zeros_before_a_torn_append_is_collateral() {
        use super::{Ctx, NodeId, garble_blocks};
        use crate::faults::{FaultConfig, FaultCounts};
        use crate::rng::{SimRng, Stream};
        use crate::trace::Trace;
        // A record of zeros ends at 600 in the block a torn append at 600
        // then garbles: its bytes are data, zeros or not. Past the write,
        // zeros are only what the file was extended with.
        let (faults, mut trace) = (FaultConfig::none(), Trace::new());
        // Garbles `image` around a 100-byte write at `offset` as seed
        // `seed` decides; returns the collateral damage counted.
        let mut garble = |seed: u64, image: &mut Vec<u8>, offset: u64| {
            let mut rng = SimRng::new(seed, Stream::Disk);
            let mut counts = FaultCounts::default();
            let mut ctx = Ctx {
                rng: &mut rng,
                faults: &faults,
                counts: &mut counts,
                trace: &mut trace,
                now_nanos: 0,
                node: NodeId(0),
            };
            garble_blocks(&mut ctx, image, offset, &[7; 100], &[]);
            counts.collateral_damage()
        };
        let mut garbled_with_damage = 0;
        for seed in 0..40 {
            let mut before = vec![0u8; 600];
            let collateral = garble(seed, &mut before, 600);
            let garbled = before[..600].iter().any(|&b| b != 0);
            assert_eq!(collateral > 0, garbled, "seed {seed}");
            garbled_with_damage += u64::from(garbled);
            let mut after = vec![0u8; 4096];
            assert_eq!(
                garble(seed, &mut after, 0),
                0,
                "zeros past a write: seed {seed}"
            );
        }
        assert!(garbled_with_damage > 0, "some seed garbles the block");
    }

    #[test]
    fn a_failed_sync_that_kept_the_cache_is_not_checked() {
        let mut diverged = inode(b"abc", Vec::new(), b"abcdef");
        diverged.diverged = true;
        diverged.check(0, 6);
    }
}
