//! The project's only `unsafe` code, kept to what the L2 responder cannot do through a safe
//! library:
//!
//! * [`PacketSocket`]: an `AF_PACKET` raw socket bound to one interface and one ethertype
//!   (ARP, or IPv6 for NDP), with a classic BPF filter so that the kernel hands us only the
//!   frames we answer (ARP requests, ICMPv6 neighbor solicitations) and not the node's
//!   traffic. Frames are read and written whole; building
//!   and parsing them is safe code in the speaker (`speaker/src/l2/packet.rs`).
//! * [`enter_netns`]: `setns(2)` for the calling thread, so a lab can run several nodes'
//!   responders in one process, each in its node's network namespace.
//!
//! Why not a crate: `socket2` cannot bind an `AF_PACKET` socket without building a
//! `sockaddr_ll` unsafely, and `pnet_datalink` opens `ETH_P_ALL` sockets in promiscuous
//! mode without BPF filters (every frame of the node would reach userspace). The calls below are the ones `mdlayher/packet`, which upstream MetalLB uses,
//! makes.
//!
//! Every `unsafe` block is one call with a `SAFETY` comment (clippy denies others).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `ETH_P_ARP`.
pub const ETH_P_ARP: u16 = 0x0806;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86DD;

/// One classic BPF instruction (`struct sock_filter`).
pub type BpfInsn = libc::sock_filter;

/// Build a BPF instruction.
pub const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
    libc::sock_filter { code, jt, jf, k }
}

/// BPF opcodes used by the responder's filters.
pub mod op {
    /// `BPF_LD | BPF_B | BPF_ABS`: load the byte at offset k.
    pub const LDB_ABS: u16 = 0x30;
    /// `BPF_LD | BPF_H | BPF_ABS`: load the big-endian 16-bit word at offset k.
    pub const LDH_ABS: u16 = 0x28;
    /// `BPF_JMP | BPF_JEQ | BPF_K`.
    pub const JEQ_K: u16 = 0x15;
    /// `BPF_RET | BPF_K`: accept k bytes (0 drops).
    pub const RET_K: u16 = 0x06;
}

/// An `AF_PACKET`/`SOCK_RAW` socket on one interface for one ethertype, non-blocking,
/// closed on drop.
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = size_of::<T>() as libc::socklen_t;
    let ptr = (value as *const T).cast::<libc::c_void>();
    // SAFETY: `ptr` points to a live `T` of `len` bytes for the duration of the call, and
    // the kernel only reads it; `fd` is an open socket we own.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr, len) };
    check(rc).map(drop)
}

impl PacketSocket {
    /// Open a socket receiving `ethertype` frames of interface `ifindex` that pass
    /// `filter` (empty: every frame of that ethertype). Needs `CAP_NET_RAW`. Must be
    /// called inside a tokio runtime.
    pub fn open(ifindex: u32, ethertype: u16, filter: &[BpfInsn]) -> io::Result<Self> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        let proto = libc::c_int::from(ethertype.to_be());
        let kind = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: a plain syscall with integer arguments; the result is checked below.
        let raw = check(unsafe { libc::socket(libc::AF_PACKET, kind, proto) })?;
        // SAFETY: `raw` is a descriptor that socket(2) just returned, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The filter goes on before bind: the socket sees the ethertype on every interface
        // until bind narrows it, and the filter keeps out everything we would not answer.
        if !filter.is_empty() {
            let prog = libc::sock_fprog {
                len: u16::try_from(filter.len())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter length"))?,
                filter: filter.as_ptr().cast_mut(),
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        }
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: ethertype.to_be(),
            sll_ifindex: ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        let ptr = (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>();
        let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `ptr` points to a live, initialised sockaddr_ll of `len` bytes.
        check(unsafe { libc::bind(fd.as_raw_fd(), ptr, len) })?;
        // SAFETY: `fd` is an OwnedFd: open, and the same descriptor until the AsyncFd
        // (which owns it) drops it.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        let sock = PacketSocket {
            fd: registered.map_err(io::Error::from)?,
        };
        // Frames of other interfaces may have queued between socket(2) and bind(2).
        let mut scratch = [0u8; 64];
        while sock.try_recv(&mut scratch)?.is_some() {}
        Ok(sock)
    }

    /// One frame if one is queued now.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let fd = self.fd.get_ref().as_raw_fd();
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
        // MSG_TRUNC returns the frame's real length: a frame larger than `buf` is cut.
        Ok(Some((n as usize).min(buf.len())))
    }

    /// The next frame (cut to `buf`'s length).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match self.try_recv(buf)? {
                Some(n) => return Ok(n),
                None => guard.clear_ready(),
            }
        }
    }

    /// Send one whole Ethernet frame on the interface. Never blocks: a full queue is an
    /// error (`WouldBlock`) the caller counts; the next request or announcement retries.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let fd = self.fd.get_ref().as_raw_fd();
        // SAFETY: `frame` is a live buffer of `frame.len()` bytes the kernel only reads.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Move the calling thread into the network namespace at `path` (for example
/// `/run/netns/NAME`). Sockets opened afterwards on this thread belong to it; other
/// threads are unaffected. Needs `CAP_SYS_ADMIN`.
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: a plain syscall on a descriptor that `file` keeps open during the call.
    check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_needs_an_existing_interface() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _guard = rt.enter();
        // index 0 binds to every interface; a huge index does not exist (ENODEV) — or
        // without CAP_NET_RAW the socket itself is refused (EPERM): either way an error,
        // never a panic.
        let err = PacketSocket::open(0x7fff_fff0, ETH_P_ARP, &[]).err();
        assert!(err.is_some());
    }

    #[test]
    fn entering_a_missing_namespace_is_an_error() {
        let err = enter_netns(Path::new("/run/netns/does-not-exist-metallb")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
