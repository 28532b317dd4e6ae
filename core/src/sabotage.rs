//! Switches that break the engine on purpose (tests only).
//!
//! Each switch is read through `sabotaged!`, which is `false` (and reads
//! no field) in a build without the `sabotage` feature: production builds
//! carry no sabotage field at all.

/// Test-only switches that break the engine on purpose, to prove the
/// simulator notices. They take effect only when `jubilant-core` is built
/// with the `sabotage` feature; otherwise the configurations have no field
/// to set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sabotage {
    /// Behave correctly.
    #[default]
    None,
    /// `sync` reports records durable without calling `fdatasync`.
    SkipSync,
    /// Recovery leaves the bytes after the last valid record in place.
    SkipTailZeroing,
    /// Recovery syncs the last segment without writing its records again,
    /// trusting a page cache that a failed sync may have left undurable.
    SkipTailRewrite,
    /// Segment creation skips the directory sync after the rename.
    SkipDirSync,
    /// Checkpoints write a changed page over its old location instead of
    /// copying it, so a crash mid-checkpoint corrupts the durable tree.
    CheckpointInPlace,
    /// Group commit answers `sync` commits before the batch's `fdatasync`.
    AckBeforeSync,
    /// WAL segments are removed as soon as a checkpoint starts writing,
    /// one checkpoint before the superblock that covers them is durable.
    WalRemovedEarly,
    /// A transaction whose ASSERT fails still commits the writes of the
    /// ops before it.
    PartialEffects,
    /// Transactions lock their keys in the order declared, not sorted.
    LocksInRequestOrder,
    /// A WAL segment kept for its values is removed as soon as the tree in
    /// memory no longer points into it, one checkpoint before one covers
    /// the change (a GC move, an overwrite) that took the last pointer out.
    VlogGcEarly,
    /// The WAL writer's `debug_assert!` that a batch it applies is in LSN
    /// order is made false: proves a simulated run checks assertions.
    FalseAssertion,
    /// A newly created data directory's parent is not synced, so a power
    /// loss may take the whole directory away.
    SkipParentDirSync,
    /// The TTL clock restarts from the wall clock alone, ignoring the
    /// readings the durable superblock and commits recorded, so a clock set
    /// back across a restart revives what had expired.
    TtlFloorIgnored,
    /// A reopened database hands out LSNs right after the last recovered
    /// record, giving a lost `async` commit's revision to another write.
    LsnReuse,
    /// Recovery treats damage as a torn tail: a WAL frame that a later
    /// batch proves was durable is cut off with everything after it, and a
    /// damaged value-log record a durable commit refers to is cut too.
    DamageAsTornTail,
    /// WAL batches start right after the previous one instead of at the
    /// next block boundary, so a torn write can garble the block an
    /// acknowledged batch ends in.
    UnalignedBatches,
    /// A checkpoint whose write found the disk out of space stops the
    /// store, as a failed sync does, instead of being written again once
    /// space is back.
    FullDiskFailsCheckpoint,
    /// The server never times out a frame that stops arriving, so a client
    /// that sends half a frame holds its connection forever.
    NoFrameTimeout,
    /// The server queues answers without bound and counts a request done
    /// once its answer is queued, not written: a client that never reads
    /// grows the server's memory without limit.
    UnboundedAnswerQueue,
    /// The server sets no TCP keepalive, so a client that vanished holds
    /// its connection forever.
    NoKeepalive,
    /// Shutdown waits for every answer to be written, however long a
    /// client that does not read takes: it never ends.
    NoShutdownDeadline,
    /// A checkpoint cuts the free tail of `data.pages` before its
    /// superblock is durable, while the durable one still counts it.
    TruncateBeforeSuperblock,
    /// The RESP listener starts a connection's next command without
    /// waiting for the one before it to reach its lock point: pipelined
    /// commands may take effect out of order.
    RespUnordered,
    /// The RESP listener's `EXEC` does not check the revisions `WATCH`
    /// saw: a block runs though a watched key changed.
    WatchIgnored,
    /// The RESP listener's read-then-commit does not assert that the keys
    /// it read are unchanged: a concurrent write between the read and the
    /// commit is lost.
    RespReadsUnchecked,
    /// A commit whose records spilled into a later WAL segment and then
    /// failed (disk full) gives out again the LSNs of its records that a
    /// rollover had already made durable.
    SpanLsnRewind,
    /// The bulk path builds over a tree that already holds keys (when its
    /// root is a leaf, or not), dropping them.
    BulkOverExisting,
    /// A run of mutations applied from one descent ignores its leaf's
    /// lower bound, so a smaller key later in an unsorted batch lands in
    /// the wrong leaf.
    RunPastLeaf,
    /// A removal from a leaf moves the cells below the removed one up but
    /// leaves their slots pointing where they were.
    SlotOffsetsUnshifted,
    /// Relocation frees the old ids of the pages it moves at once, though
    /// the durable superblock still reaches them.
    RelocateFreesNow,
    /// A close restarts the WAL empty without first checkpointing at its
    /// last (`Checkpoint`) record, so the log no longer begins right after
    /// the durable checkpoint.
    WalRestartUncovered,
    /// A rollover goes on into the next segment without syncing the one
    /// it leaves, so a record in the new segment no longer proves the old
    /// one durable.
    RolloverUnsynced,
    /// A descent takes the page in the cache frame its parent's hint names
    /// without checking that the frame still holds that page.
    HintTrusted,
    /// The value cache keys a value by its offset alone, so a value of
    /// another segment at the same offset answers for it.
    ValueCacheByOffset,
    /// The scan takes a spare (a WAL segment prepared ahead that never
    /// received a batch) for part of the log.
    SpareTakenForSegment,
    /// The log removes the segment before one with an open header and no
    /// synced batch, the only one that names its first LSN.
    UnprovenRemoved,
    /// Recovery's scan starts one segment after the one holding the first
    /// LSN to replay, so committed records after the checkpoint are not
    /// redone.
    ScanSkipsReplaySegment,
    /// The server answers PING with PONG after its database failed, as it
    /// did before health was honest.
    PingIgnoresFailure,
    /// A scan page that ends on its limit drops its last entry but resumes
    /// after it: that key is never returned.
    ScanResumeSkips,
    /// A backup's pin keeps the WAL but not the pages: a checkpoint may
    /// write over a page the pinned superblock reaches while it is copied.
    BackupPagesUnpinned,
    /// A backup neither checkpoints nor syncs first: it takes the WAL as
    /// far as the last sync made it durable, so `async` commits answered
    /// before the backup began but not yet synced are missing from it.
    BackupWithoutSync,
    /// The server serves a connection's requests whether or not it has
    /// authenticated (on both listeners), though users are configured.
    AuthSkipped,
    /// An ACL check skips a request's second key (a transaction's, an
    /// `MSET`'s), on both listeners.
    AclSecondKeyUnchecked,
    /// The audit log is never rotated: it grows without bound.
    AuditUnrotated,
    /// A snapshot's undo image of a key is saved after the mutation is
    /// applied, so it holds the new state, not the snapshot's.
    SnapshotImageAfterApply,
    /// `Db::update` writes without asserting the revision it read, so two
    /// racing updates can both apply, one over the other.
    UpdateUnasserted,
}

impl Sabotage {
    /// Every switch, in declaration order.
    pub const ALL: [Sabotage; 47] = [
        Sabotage::None,
        Sabotage::SkipSync,
        Sabotage::SkipTailZeroing,
        Sabotage::SkipTailRewrite,
        Sabotage::SkipDirSync,
        Sabotage::CheckpointInPlace,
        Sabotage::AckBeforeSync,
        Sabotage::WalRemovedEarly,
        Sabotage::PartialEffects,
        Sabotage::LocksInRequestOrder,
        Sabotage::VlogGcEarly,
        Sabotage::FalseAssertion,
        Sabotage::SkipParentDirSync,
        Sabotage::TtlFloorIgnored,
        Sabotage::LsnReuse,
        Sabotage::DamageAsTornTail,
        Sabotage::UnalignedBatches,
        Sabotage::FullDiskFailsCheckpoint,
        Sabotage::NoFrameTimeout,
        Sabotage::UnboundedAnswerQueue,
        Sabotage::NoKeepalive,
        Sabotage::NoShutdownDeadline,
        Sabotage::TruncateBeforeSuperblock,
        Sabotage::RespUnordered,
        Sabotage::WatchIgnored,
        Sabotage::RespReadsUnchecked,
        Sabotage::SpanLsnRewind,
        Sabotage::BulkOverExisting,
        Sabotage::RunPastLeaf,
        Sabotage::SlotOffsetsUnshifted,
        Sabotage::RelocateFreesNow,
        Sabotage::WalRestartUncovered,
        Sabotage::RolloverUnsynced,
        Sabotage::HintTrusted,
        Sabotage::ValueCacheByOffset,
        Sabotage::SpareTakenForSegment,
        Sabotage::UnprovenRemoved,
        Sabotage::ScanSkipsReplaySegment,
        Sabotage::PingIgnoresFailure,
        Sabotage::ScanResumeSkips,
        Sabotage::BackupPagesUnpinned,
        Sabotage::BackupWithoutSync,
        Sabotage::AuthSkipped,
        Sabotage::AclSecondKeyUnchecked,
        Sabotage::AuditUnrotated,
        Sabotage::SnapshotImageAfterApply,
        Sabotage::UpdateUnasserted,
    ];

    /// The switch's name on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Sabotage::None => "none",
            Sabotage::SkipSync => "skip-sync",
            Sabotage::SkipTailZeroing => "skip-tail-zeroing",
            Sabotage::SkipTailRewrite => "skip-tail-rewrite",
            Sabotage::SkipDirSync => "skip-dir-sync",
            Sabotage::CheckpointInPlace => "checkpoint-in-place",
            Sabotage::AckBeforeSync => "ack-before-sync",
            Sabotage::WalRemovedEarly => "wal-removed-early",
            Sabotage::PartialEffects => "partial-effects",
            Sabotage::LocksInRequestOrder => "locks-in-request-order",
            Sabotage::VlogGcEarly => "vlog-gc-early",
            Sabotage::FalseAssertion => "false-assertion",
            Sabotage::SkipParentDirSync => "skip-parent-dir-sync",
            Sabotage::TtlFloorIgnored => "ttl-floor-ignored",
            Sabotage::LsnReuse => "lsn-reuse",
            Sabotage::DamageAsTornTail => "damage-as-torn-tail",
            Sabotage::UnalignedBatches => "unaligned-batches",
            Sabotage::FullDiskFailsCheckpoint => "full-disk-fails-checkpoint",
            Sabotage::NoFrameTimeout => "no-frame-timeout",
            Sabotage::UnboundedAnswerQueue => "unbounded-answer-queue",
            Sabotage::NoKeepalive => "no-keepalive",
            Sabotage::NoShutdownDeadline => "no-shutdown-deadline",
            Sabotage::TruncateBeforeSuperblock => "truncate-before-superblock",
            Sabotage::RespUnordered => "resp-unordered",
            Sabotage::WatchIgnored => "watch-ignored",
            Sabotage::RespReadsUnchecked => "resp-reads-unchecked",
            Sabotage::SpanLsnRewind => "span-lsn-rewind",
            Sabotage::BulkOverExisting => "bulk-over-existing",
            Sabotage::RunPastLeaf => "run-past-leaf",
            Sabotage::SlotOffsetsUnshifted => "slot-offsets-unshifted",
            Sabotage::RelocateFreesNow => "relocate-frees-now",
            Sabotage::WalRestartUncovered => "wal-restart-uncovered",
            Sabotage::RolloverUnsynced => "rollover-unsynced",
            Sabotage::HintTrusted => "hint-trusted",
            Sabotage::ValueCacheByOffset => "value-cache-by-offset",
            Sabotage::SpareTakenForSegment => "spare-taken-for-segment",
            Sabotage::UnprovenRemoved => "unproven-removed",
            Sabotage::ScanSkipsReplaySegment => "scan-skips-replay-segment",
            Sabotage::PingIgnoresFailure => "ping-ignores-failure",
            Sabotage::ScanResumeSkips => "scan-resume-skips",
            Sabotage::BackupPagesUnpinned => "backup-pages-unpinned",
            Sabotage::BackupWithoutSync => "backup-without-sync",
            Sabotage::AuthSkipped => "auth-skipped",
            Sabotage::AclSecondKeyUnchecked => "acl-second-key-unchecked",
            Sabotage::AuditUnrotated => "audit-unrotated",
            Sabotage::SnapshotImageAfterApply => "snapshot-image-after-apply",
            Sabotage::UpdateUnasserted => "update-unasserted",
        }
    }
}

impl std::fmt::Display for Sabotage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Sabotage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Sabotage::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Sabotage::ALL.iter().map(|n| n.name()).collect();
                format!("unknown sabotage `{s}`; known: {}", names.join(", "))
            })
    }
}

/// Whether sabotage switch `$switch` is on in `$holder.sabotage`. Without
/// the `sabotage` feature it is the constant `false` and `$holder` is not
/// even evaluated, so holders carry their `sabotage` field only under the
/// feature.
macro_rules! sabotaged {
    ($holder:expr, $switch:ident) => {{
        #[cfg(feature = "sabotage")]
        let on = $holder.sabotage == $crate::sabotage::Sabotage::$switch;
        #[cfg(not(feature = "sabotage"))]
        let on = false;
        on
    }};
}
pub(crate) use sabotaged;
