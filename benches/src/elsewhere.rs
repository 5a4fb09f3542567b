//! The floors and the subprocess workloads off Unix, where this crate
//! still builds (so that `cargo test --workspace` does) but they do not run:
//! the floors are epoll, `polling` and blocking sockets driven through
//! `AsFd`, the subprocess workloads `posix_spawnp` and `waitpid`, and the
//! benchmarks are run on Linux (`cargo xtask bench`). Each answers that it
//! is not available here; `Runtime::supports` already says no for them.

use crate::{BoxError, Measurement, Workload};

fn unavailable(what: &str) -> BoxError {
    format!("{what} runs on Unix only").into()
}

/// The floors' stand-ins.
pub(crate) mod floor {
    use super::{BoxError, Measurement, Workload, unavailable};

    /// How a floor waits for readiness (as on Unix).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Backend {
        /// Through `polling`.
        Polling,
        /// epoll(7) by hand.
        Epoll,
    }

    pub(crate) fn supports(_backend: Backend, _workload: Workload) -> bool {
        false
    }

    pub(crate) fn measure(
        _backend: Backend,
        workload: Workload,
        _count: u64,
    ) -> Result<Measurement, BoxError> {
        Err(unavailable(&format!("the floor of `{workload}`")))
    }

    pub(crate) fn blocking(workload: Workload, _count: u64) -> Result<Measurement, BoxError> {
        Err(unavailable(&format!("the blocking floor of `{workload}`")))
    }
}

/// The subprocess workloads' stand-ins.
pub(crate) mod subprocess {
    use super::{BoxError, Measurement, Workload, unavailable};

    pub(crate) fn aio(
        _event_loop: &aio::EventLoop,
        workload: Workload,
        _spawns: u64,
    ) -> Result<Measurement, BoxError> {
        Err(unavailable(&format!("`{workload}`")))
    }

    pub(crate) fn tokio(
        _runtime: &tokio::runtime::Runtime,
        _local: &tokio::task::LocalSet,
        workload: Workload,
        _spawns: u64,
    ) -> Result<Measurement, BoxError> {
        Err(unavailable(&format!("`{workload}`")))
    }

    pub(crate) fn floor(workload: Workload, _spawns: u64) -> Result<Measurement, BoxError> {
        Err(unavailable(&format!("`{workload}`")))
    }
}
