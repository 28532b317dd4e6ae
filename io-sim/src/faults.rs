//! The one fault configuration of a world, drawn from its seed ("swarm
//! testing") and pinnable from the command line.
//!
//! Invariant kept here: every knob that changes what can go wrong in a world
//! is a [`Fault`] with a name, a meaning and a swarm range, so the header of
//! every run and its JSON summary name all of them, and any one can be pinned
//! to reproduce or isolate a failure.
//!
//! Swarm testing: rather than every fault at a middling rate in every run,
//! each seed switches each fault on or off and picks its rate, so some runs
//! hammer one fault and others see a combination nobody thought to write.

use std::fmt;

use crate::rng::SimRng;

/// One kind of fault (or fault-shaping amount) the simulator can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Per step: the node under test loses power (unsynced writes and
    /// directory changes are then kept, lost or torn).
    Crash,
    /// Per step: the process is killed; the OS page cache survives.
    Kill,
    /// At a crash, per unsynced write: the write is lost.
    WriteLost,
    /// At a crash, per unsynced write not lost: only some of its 512-byte
    /// sectors land.
    WriteTorn,
    /// At a crash, per directory: the unsynced name changes are lost from a
    /// random point on.
    DirOpLost,
    /// Per `fdatasync` or directory sync: it fails with EIO.
    FsyncError,
    /// Per read: one bit of the returned data is flipped.
    ReadCorrupt,
    /// Per write: the data lands a few sectors away from where it was aimed.
    WriteMisdirected,
    /// Per write or growth: it fails with ENOSPC, possibly after part of
    /// the write landed.
    DiskFull,
    /// Per file operation other than a sync (open, read, write, rename,
    /// remove, list): it fails with EIO; a failed write may have partly
    /// landed.
    IoError,
    /// Per step: the wall clock jumps forwards or backwards.
    ClockJump,
    /// Per network write: the connection is reset.
    NetDrop,
    /// Per step: a partition starts between two nodes.
    NetPartition,
    /// Upper bound of a disk operation's latency, in microseconds.
    IoLatencyUs,
    /// Upper bound of a network message's latency, in microseconds.
    NetLatencyUs,
    /// Per write: the write reports success but never lands, so the place
    /// keeps reading back what it held before (a stale page).
    WriteStale,
    /// At a crash, per torn write: the drive has no atomic sector writes,
    /// and each 4 KiB block the write touches is either written whole, left
    /// alone, or garbled whole (random bytes, the bytes around the write in
    /// that block included). An engine that writes into a block holding
    /// acknowledged bytes can lose them this way; the disk counts each time
    /// it does ([`FaultCounts::collateral_damage`]).
    WriteGarbled,
    /// At a crash, per crash: one bit of one durable byte of a random file
    /// flips, and stays flipped until something overwrites it (bit rot on
    /// the medium, found by the next reader).
    BitRot,
    /// Per step: another tenant fills the disk to its last few blocks, and
    /// it stays full until the engine frees space or the tenant gives it
    /// back (a random time later, or when an operator frees space for a
    /// database that cannot open). While full, writes that allocate,
    /// creates, and now and then renames and `fdatasync`s (delayed
    /// allocation) fail with ENOSPC, or EDQUOT for a quota.
    DiskFilled,
    /// Per overwrite on a full disk: the filesystem is copy-on-write, so
    /// rewriting allocated blocks needs free blocks too (btrfs, ZFS).
    DiskCow,
    /// At a crash, per crash: one 512-byte sector of durable data of a
    /// random file becomes unreadable (a latent sector error): every read
    /// that touches it fails with EIO until a write covers the whole
    /// sector (the drive remaps it).
    SectorUnreadable,
    /// Per accept with a connection waiting: it fails with EMFILE (the
    /// process is out of descriptors); the connection stays in the backlog.
    AcceptError,
}

/// How a fault's value is drawn for a seed.
struct Swarm {
    /// Chance the fault is switched on at all.
    enabled: f64,
    lo: f64,
    hi: f64,
    /// Drawn on a log scale (probabilities over orders of magnitude).
    log: bool,
}

impl Fault {
    /// Every fault, in the order they are printed.
    pub const ALL: [Fault; 22] = [
        Fault::Crash,
        Fault::Kill,
        Fault::WriteLost,
        Fault::WriteTorn,
        Fault::DirOpLost,
        Fault::FsyncError,
        Fault::ReadCorrupt,
        Fault::WriteMisdirected,
        Fault::DiskFull,
        Fault::IoError,
        Fault::ClockJump,
        Fault::NetDrop,
        Fault::NetPartition,
        Fault::IoLatencyUs,
        Fault::NetLatencyUs,
        Fault::WriteStale,
        Fault::WriteGarbled,
        Fault::BitRot,
        Fault::DiskFilled,
        Fault::DiskCow,
        Fault::SectorUnreadable,
        Fault::AcceptError,
    ];

    /// The name used on the command line, in headers and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Kill => "kill",
            Fault::WriteLost => "write_lost",
            Fault::WriteTorn => "write_torn",
            Fault::DirOpLost => "dir_op_lost",
            Fault::FsyncError => "fsync_error",
            Fault::ReadCorrupt => "read_corrupt",
            Fault::WriteMisdirected => "write_misdirected",
            Fault::DiskFull => "disk_full",
            Fault::IoError => "io_error",
            Fault::ClockJump => "clock_jump",
            Fault::NetDrop => "net_drop",
            Fault::NetPartition => "net_partition",
            Fault::IoLatencyUs => "io_latency_us",
            Fault::NetLatencyUs => "net_latency_us",
            Fault::WriteStale => "write_stale",
            Fault::WriteGarbled => "write_garbled",
            Fault::BitRot => "bit_rot",
            Fault::DiskFilled => "disk_filled",
            Fault::DiskCow => "disk_cow",
            Fault::SectorUnreadable => "sector_unreadable",
            Fault::AcceptError => "accept_error",
        }
    }

    /// The fault named `name`.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the value is a probability (as opposed to an amount).
    pub fn is_probability(self) -> bool {
        !matches!(self, Fault::IoLatencyUs | Fault::NetLatencyUs)
    }

    /// Faults that damage data on the medium, as opposed to crashes (which
    /// only decide what of the unsynced data survives) and bad reads (which
    /// damage a copy, and a re-read fixes). Under these a single-copy store
    /// may lose acknowledged data, but must never return wrong data.
    pub fn damages_stored_data(self) -> bool {
        matches!(
            self,
            Fault::WriteMisdirected | Fault::WriteStale | Fault::BitRot | Fault::SectorUnreadable
        )
    }

    fn swarm(self) -> Swarm {
        let p = |enabled, lo, hi| Swarm {
            enabled,
            lo,
            hi,
            log: true,
        };
        let linear = |enabled, lo, hi| Swarm {
            enabled,
            lo,
            hi,
            log: false,
        };
        match self {
            Fault::Crash => p(0.9, 1e-4, 3e-3),
            Fault::Kill => p(0.3, 1e-4, 2e-3),
            Fault::WriteLost => linear(0.8, 0.1, 0.9),
            Fault::WriteTorn => linear(0.6, 0.05, 0.5),
            Fault::DirOpLost => linear(0.6, 0.1, 0.9),
            Fault::FsyncError => p(0.3, 1e-3, 2e-2),
            Fault::ReadCorrupt => p(0.25, 1e-3, 2e-2),
            Fault::WriteMisdirected => p(0.2, 1e-3, 1e-2),
            Fault::DiskFull => p(0.3, 1e-3, 5e-2),
            Fault::IoError => p(0.2, 1e-4, 5e-3),
            Fault::ClockJump => p(0.3, 1e-4, 1e-3),
            Fault::NetDrop => p(0.3, 1e-3, 2e-2),
            Fault::NetPartition => p(0.3, 1e-4, 1e-3),
            Fault::IoLatencyUs => p(1.0, 1.0, 2_000.0),
            Fault::NetLatencyUs => p(1.0, 10.0, 5_000.0),
            Fault::WriteStale => p(0.2, 1e-3, 1e-2),
            Fault::WriteGarbled => linear(0.4, 0.2, 1.0),
            Fault::BitRot => p(0.15, 0.02, 0.3),
            Fault::DiskFilled => p(0.3, 1e-4, 2e-3),
            Fault::DiskCow => linear(0.3, 0.5, 1.0),
            Fault::SectorUnreadable => p(0.15, 0.02, 0.3),
            Fault::AcceptError => p(0.2, 1e-3, 5e-2),
        }
    }
}

/// A value for every [`Fault`].
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    values: [f64; Fault::ALL.len()],
}

impl FaultConfig {
    /// No faults at all; latencies at a small fixed value, so tasks still
    /// interleave.
    pub fn none() -> Self {
        let mut config = FaultConfig {
            values: [0.0; Fault::ALL.len()],
        };
        config.set(Fault::IoLatencyUs, 50.0);
        config.set(Fault::NetLatencyUs, 100.0);
        config
    }

    /// A configuration drawn from `rng`: each fault on or off, and its rate.
    pub fn swarm(rng: &mut SimRng) -> Self {
        let mut config = FaultConfig {
            values: [0.0; Fault::ALL.len()],
        };
        for fault in Fault::ALL {
            let swarm = fault.swarm();
            // Draw both numbers for every fault, on or off, so pinning one
            // fault does not change the others a seed gets.
            let on = rng.unit() < swarm.enabled;
            let value = if swarm.log {
                rng.log_uniform(swarm.lo, swarm.hi)
            } else {
                swarm.lo + rng.unit() * (swarm.hi - swarm.lo)
            };
            config.set(fault, if on { round_sig(value) } else { 0.0 });
        }
        config
    }

    /// The value of `fault`.
    pub fn get(&self, fault: Fault) -> f64 {
        self.values[fault as usize]
    }

    /// Sets `fault` to `value`.
    pub fn set(&mut self, fault: Fault, value: f64) {
        assert!(
            value.is_finite() && value >= 0.0,
            "fault values are finite and non-negative"
        );
        assert!(
            !fault.is_probability() || value <= 1.0,
            "{} is a probability",
            fault.name()
        );
        self.values[fault as usize] = value;
    }

    /// Applies a `name=value` pin such as `crash=0.001`.
    pub fn pin(&mut self, spec: &str) -> Result<(), String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("fault pin `{spec}` is not of the form name=value"))?;
        let fault = Fault::from_name(name.trim()).ok_or_else(|| {
            let names: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown fault `{}`; known: {}",
                name.trim(),
                names.join(", ")
            )
        })?;
        let value: f64 = value.trim().parse().map_err(|_| {
            format!(
                "fault `{}` needs a number, got `{}`",
                fault.name(),
                value.trim()
            )
        })?;
        if !value.is_finite() || value < 0.0 || (fault.is_probability() && value > 1.0) {
            return Err(format!(
                "fault `{}` must be {}, got {value}",
                fault.name(),
                if fault.is_probability() {
                    "a probability in [0, 1]"
                } else {
                    "a non-negative amount"
                }
            ));
        }
        self.set(fault, value);
        Ok(())
    }

    /// Every fault with its value, in [`Fault::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Fault, f64)> + '_ {
        Fault::ALL.into_iter().map(|f| (f, self.get(f)))
    }
}

/// Four significant digits: headers stay readable and a printed config
/// pins back to exactly the same values.
fn round_sig(value: f64) -> f64 {
    if value == 0.0 {
        return 0.0;
    }
    let text = format!("{value:.3e}");
    text.parse().unwrap_or(value)
}

impl fmt::Display for FaultConfig {
    /// `name=value` pairs separated by commas: the form `--faults` accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (fault, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", fault.name(), value)?;
        }
        Ok(())
    }
}

/// How many times each fault was injected in a world.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    counts: [u64; Fault::ALL.len()],
    collateral: u64,
}

impl FaultCounts {
    /// Records one injection of `fault`.
    pub fn add(&mut self, fault: Fault) {
        self.counts[fault as usize] += 1;
    }

    /// How many times `fault` was injected.
    pub fn get(&self, fault: Fault) -> u64 {
        self.counts[fault as usize]
    }

    /// Every fault with its count, in [`Fault::ALL`] order (amount knobs
    /// such as latencies are left out: they are not injections).
    pub fn iter(&self) -> impl Iterator<Item = (Fault, u64)> + '_ {
        Fault::ALL
            .into_iter()
            .filter(|f| f.is_probability())
            .map(|f| (f, self.get(f)))
    }

    /// Records a garbled block (see [`Fault::WriteGarbled`]) that held
    /// non-zero durable bytes the torn write did not cover.
    pub fn add_collateral(&mut self) {
        self.collateral += 1;
    }

    /// Blocks garbled by a torn write that held durable bytes outside the
    /// write: damage the engine invited by writing into a block that held
    /// acknowledged data. Not an injection: an engine that never does so
    /// never sees one.
    pub fn collateral_damage(&self) -> u64 {
        self.collateral
    }

    /// Injections so far that damaged stored data (see
    /// [`Fault::damages_stored_data`]).
    pub fn stored_data_damage(&self) -> u64 {
        self.iter()
            .filter(|(f, _)| f.damages_stored_data())
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    #[test]
    fn a_printed_config_pins_back_to_itself() {
        let config = FaultConfig::swarm(&mut SimRng::new(42, Stream::Swarm));
        let mut pinned = FaultConfig::none();
        for pair in config.to_string().split(',') {
            pinned.pin(pair).expect("printed pairs parse");
        }
        assert_eq!(pinned, config);
    }

    #[test]
    fn swarm_switches_faults_on_and_off_across_seeds() {
        let configs: Vec<_> = (0..200)
            .map(|seed| FaultConfig::swarm(&mut SimRng::new(seed, Stream::Swarm)))
            .collect();
        for fault in Fault::ALL.into_iter().filter(|f| f.is_probability()) {
            let on = configs.iter().filter(|c| c.get(fault) > 0.0).count();
            assert!(on > 0, "{} never on", fault.name());
            assert!(on < 200, "{} never off", fault.name());
        }
    }

    #[test]
    fn bad_pins_say_what_is_wrong() {
        let mut config = FaultConfig::none();
        assert!(
            config
                .pin("crash")
                .expect_err("must be refused")
                .contains("name=value")
        );
        assert!(
            config
                .pin("meteor=0.1")
                .expect_err("must be refused")
                .contains("unknown fault `meteor`")
        );
        assert!(
            config
                .pin("crash=lots")
                .expect_err("must be refused")
                .contains("needs a number")
        );
        assert!(
            config
                .pin("crash=2")
                .expect_err("must be refused")
                .contains("probability")
        );
        assert!(config.pin("io_latency_us=2000").is_ok());
    }
}
