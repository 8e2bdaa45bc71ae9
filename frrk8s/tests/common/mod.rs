//! Shared by the real-FRR tests and the apply benchmark: the driver for a lab instance.

use frr_k8s::frr::Vtysh;
use metallb_netlab::FrrInstance;

/// The vtysh driver for `frr`, on whichever FRR build it runs (the host's, or FRR 10's
/// tree through chroot: then batch files go into the tree and PID files are read there).
pub fn vtysh_for(frr: &FrrInstance) -> Vtysh {
    let (batch_dir, seen_as) = frr.scratch_dir();
    Vtysh::with_pathspace(frr.name())
        .command_words(frr.build().vtysh_words())
        .run_dir_base(frr.build().run_base())
        .scratch_dir(batch_dir)
        .scratch_dir_seen_as(seen_as)
}
