//! MetalLB's controller: IP address allocation for LoadBalancer Services.
//!
//! [`allocator`] is the pure core; the reconciler that feeds it from watches and writes
//! Service and pool status comes next to it.

pub mod allocator;
