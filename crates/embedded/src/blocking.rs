//! How many threads a tokio runtime may start for blocking work: a number a core, with a floor.

/// A runtime's bound on its blocking threads (tokio's default is 512, whatever the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingThreads {
    pub per_core: usize,
    /// The fewest, however few the cores: blocking work also waits on the disk and on locks.
    pub floor: usize,
}

impl BlockingThreads {
    /// The bound on a machine of `cores` cores.
    pub fn on(self, cores: usize) -> usize {
        cores.saturating_mul(self.per_core).max(self.floor)
    }

    /// The bound on the cores this process may use (its CPU affinity and cgroup quota
    /// count); one core when they cannot be read.
    pub fn here(self) -> usize {
        self.on(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// The pipeline runtime's bound (`lib.rs`): its reads, signatures and file writes. The
/// database keeps as many idle reader connections (`db.rs`).
pub const PIPELINE: BlockingThreads = BlockingThreads {
    per_core: 4,
    floor: 8,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_so_many_a_core_and_never_below_the_floor() {
        let bound = BlockingThreads {
            per_core: 4,
            floor: 10,
        };
        assert_eq!(bound.on(1), 10);
        assert_eq!(bound.on(2), 10);
        assert_eq!(bound.on(3), 12);
        assert_eq!(bound.on(usize::MAX), usize::MAX, "no overflow");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(
            bound.here(),
            bound.on(cores),
            "here is this machine's core count"
        );
    }
}
