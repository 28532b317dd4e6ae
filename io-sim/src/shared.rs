//! What a world's tasks and its driver share: the executor, the clock,
//! the disks, the network, the fault settings and counts, and the trace.
//!
//! Invariant kept here: every disk or network operation runs with the one
//! fault context of its world (its RNG stream, its settings, its counts and
//! its trace), taken together under the world's locks, so the order of
//! operations alone decides every fault.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use jubilant_core::mutex::lock;

use crate::disk::{self, Disk};
use crate::executor::Executor;
use crate::faults::{FaultConfig, FaultCounts};
use crate::net::{self, Network};
use crate::node::NodeId;
use crate::rng::SimRng;
use crate::time::SimClock;
use crate::trace::Trace;

pub(crate) struct State {
    pub faults: FaultConfig,
    pub disks: BTreeMap<NodeId, Disk>,
    pub net: Network,
    pub disk_rng: SimRng,
    pub net_rng: SimRng,
    pub counts: FaultCounts,
}

pub(crate) struct Shared {
    pub exec: Executor,
    pub clock: Arc<SimClock>,
    pub state: Mutex<State>,
    pub trace: Mutex<Trace>,
    pub sched_rng: Mutex<SimRng>,
}

impl Shared {
    /// Runs `f` on `node`'s disk with the fault context.
    pub(crate) fn with_disk<R>(
        &self,
        node: NodeId,
        f: impl FnOnce(&mut Disk, &mut disk::Ctx<'_>) -> R,
    ) -> R {
        let mut state = lock(&self.state);
        let mut trace = lock(&self.trace);
        let State {
            disks,
            disk_rng,
            counts,
            faults,
            ..
        } = &mut *state;
        let mut ctx = disk::Ctx {
            rng: disk_rng,
            faults,
            counts,
            trace: &mut trace,
            now_nanos: self.clock.now_nanos(),
            node,
        };
        f(disks.entry(node).or_default(), &mut ctx)
    }

    /// Runs `f` on the network with the fault context.
    pub(crate) fn with_net<R>(&self, f: impl FnOnce(&mut Network, &mut net::Ctx<'_>) -> R) -> R {
        let mut state = lock(&self.state);
        let mut trace = lock(&self.trace);
        let State {
            net,
            net_rng,
            counts,
            faults,
            ..
        } = &mut *state;
        let mut ctx = net::Ctx {
            rng: net_rng,
            faults,
            counts,
            trace: &mut trace,
            clock: &self.clock,
        };
        f(net, &mut ctx)
    }

    pub(crate) fn trace(&self, args: fmt::Arguments<'_>) {
        lock(&self.trace).record(self.clock.now_nanos(), args);
    }
}
