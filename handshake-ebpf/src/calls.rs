//! Counting the calls a packet costs, for the microbenchmark's table: helper calls, per-CPU
//! map lookups (helper calls before Linux 6.10 inlines them) and BPF-to-BPF calls, each
//! ~40 ns on hosts with return-thunk mitigations. Only the `count-calls` build counts: the
//! benchmark loads that object beside the product's to read the counts per path; in the
//! product's object `count` is empty and compiles to nothing.

#[cfg(feature = "count-calls")]
use aya_ebpf::{macros::map, maps::PerCpuArray};

#[derive(Clone, Copy)]
pub enum Call {
    Helper = 0,
    PerCpuLookup = 1,
    Subprogram = 2,
}

/// Indexed by `Call`; the benchmark reads and resets it around one run.
#[cfg(feature = "count-calls")]
#[map(name = "CALLS")]
static CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(3, 0);

#[inline(always)]
pub fn count(call: Call, times: u64) {
    #[cfg(feature = "count-calls")]
    if let Some(counted) = CALLS.get_ptr_mut(call as u32) {
        unsafe { *counted += times };
    }
    #[cfg(not(feature = "count-calls"))]
    let _ = (call, times);
}
