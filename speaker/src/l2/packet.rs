//! ARP and NDP frames: parse what we answer, build what we send. Pure byte handling,
//! whole Ethernet frames in and out (the socket in `metallb-rawsock` reads and writes them
//! as they are on the wire).
//!
//! * ARP (RFC 826) request for an IP we own → reply to the asker; gratuitous ARP on
//!   takeover: a reply to the broadcast address naming our MAC (upstream's form, which
//!   Linux hosts and routers accept to update an existing entry).
//! * NDP (RFC 4861) neighbor solicitation for an IP we own → solicited neighbor
//!   advertisement (S and O set) to the solicitor; unsolicited advertisement (O set) to
//!   all-nodes on takeover. Sent from the interface's link-local address, hop limit 255.
//!
//! The BPF filters below run in the kernel, so only these frames reach userspace.

use std::net::{Ipv4Addr, Ipv6Addr};

use metallb_rawsock::{bpf, op, BpfInsn};

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETH_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
const ICMPV6_NEXT_HEADER: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// ARP requests only (opcode 1 at offset 20).
pub const ARP_FILTER: [BpfInsn; 4] = [
    bpf(op::LDH_ABS, 0, 0, 20),
    bpf(op::JEQ_K, 0, 1, 1),
    bpf(op::RET_K, 0, 0, 0xffff),
    bpf(op::RET_K, 0, 0, 0),
];

/// ICMPv6 neighbor solicitations only (next header 58 at offset 20, type 135 at 54; a
/// solicitation behind extension headers is not one any router sends).
pub const NDP_FILTER: [BpfInsn; 6] = [
    bpf(op::LDB_ABS, 0, 0, 20),
    bpf(op::JEQ_K, 0, 3, ICMPV6_NEXT_HEADER as u32),
    bpf(op::LDB_ABS, 0, 0, 54),
    bpf(op::JEQ_K, 0, 1, NEIGHBOR_SOLICITATION as u32),
    bpf(op::RET_K, 0, 0, 0xffff),
    bpf(op::RET_K, 0, 0, 0),
];

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn ethernet(dst: Mac, src: Mac, ethertype: u16, capacity: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER + capacity);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An ARP request (Ethernet/IPv4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpRequest {
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// Parse an Ethernet frame holding an ARP request.
pub fn parse_arp_request(f: &[u8]) -> Option<ArpRequest> {
    if f.len() < ETH_HEADER + 28 || u16::from_be_bytes([f[12], f[13]]) != ETHERTYPE_ARP {
        return None;
    }
    let a = &f[ETH_HEADER..];
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request
    if a[0..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
        return None;
    }
    Some(ArpRequest {
        sender_mac: mac_at(a, 8),
        sender_ip: ipv4_at(a, 14),
        target_ip: ipv4_at(a, 24),
    })
}

fn arp(op: u16, dst: Mac, src: Mac, ip: Ipv4Addr, target_mac: Mac, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut f = ethernet(dst, src, ETHERTYPE_ARP, 28);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target_ip.octets());
    f
}

/// The reply to `req` saying `req.target_ip` is at `mac`.
pub fn arp_reply(mac: Mac, req: &ArpRequest) -> Vec<u8> {
    arp(
        2,
        req.sender_mac,
        mac,
        req.target_ip,
        req.sender_mac,
        req.sender_ip,
    )
}

/// A gratuitous ARP announcing that `ip` is at `mac`.
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp(2, BROADCAST, mac, ip, BROADCAST, ip)
}

/// A neighbor solicitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The Ethernet source (the solicitor's MAC).
    pub src_mac: Mac,
    /// `::` for duplicate address detection.
    pub src_ip: Ipv6Addr,
    pub target: Ipv6Addr,
}

/// Parse an Ethernet frame holding an ICMPv6 neighbor solicitation (hop limit 255, code 0,
/// as RFC 4861 requires of a valid one).
pub fn parse_neighbor_solicitation(f: &[u8]) -> Option<NeighborSolicitation> {
    let icmp = ETH_HEADER + IPV6_HEADER;
    if f.len() < icmp + 24 || u16::from_be_bytes([f[12], f[13]]) != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = &f[ETH_HEADER..];
    if ip[0] >> 4 != 6 || ip[6] != ICMPV6_NEXT_HEADER || ip[7] != 255 {
        return None;
    }
    if f[icmp] != NEIGHBOR_SOLICITATION || f[icmp + 1] != 0 {
        return None;
    }
    Some(NeighborSolicitation {
        src_mac: mac_at(f, 6),
        src_ip: ipv6_at(ip, 8),
        target: ipv6_at(f, icmp + 8),
    })
}

/// The ICMPv6 checksum over the IPv6 pseudo-header and `body`.
fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, body: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for chunk in b.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6_NEXT_HEADER]);
    add(body);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `33:33:` + the last 32 bits of a multicast IPv6 address.
pub fn multicast_mac(ip: &Ipv6Addr) -> Mac {
    let o = ip.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast address of `ip` (`ff02::1:ffXX:XXXX`), where solicitations
/// for it are sent.
pub fn solicited_node(ip: &Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// A neighbor advertisement for `target` at `mac`, from `src_ip` (our link-local).
/// `to`: the solicitor (solicited: S and O set) or `None` for an unsolicited one to
/// all-nodes (O set).
pub fn neighbor_advertisement(
    mac: Mac,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
    to: Option<(Mac, Ipv6Addr)>,
) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let (dst_mac, dst_ip, flags) = match to {
        Some((m, ip)) => (m, ip, 0x60u8),
        None => (multicast_mac(&all_nodes), all_nodes, 0x20u8),
    };
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0]);
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[OPT_TARGET_LL, 1]);
    body.extend_from_slice(&mac);
    ndp_frame((mac, dst_mac), (src_ip, dst_ip), body)
}

/// An NDP message (`body`: ICMPv6 type, code, zero checksum, rest) in an IPv6 packet with
/// hop limit 255 in an Ethernet frame; the checksum is filled in. `macs` and `ips` are
/// (source, destination).
fn ndp_frame(macs: (Mac, Mac), ips: (Ipv6Addr, Ipv6Addr), mut body: Vec<u8>) -> Vec<u8> {
    let ((src_mac, dst_mac), (src, dst)) = (macs, ips);
    let sum = icmpv6_checksum(&src, &dst, &body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = ethernet(dst_mac, src_mac, ETHERTYPE_IPV6, IPV6_HEADER + body.len());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
    f.extend_from_slice(&[ICMPV6_NEXT_HEADER, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&body);
    f
}

/// The source link-layer option of a solicitation, when present (the MAC to answer to
/// may differ from the Ethernet source behind a proxy; we answer the Ethernet source as
/// upstream does, this is for tests and logs).
pub fn solicitation_source_ll(f: &[u8]) -> Option<Mac> {
    let mut at = ETH_HEADER + IPV6_HEADER + 24;
    while at + 8 <= f.len() {
        let (kind, len) = (f[at], usize::from(f[at + 1]) * 8);
        if len == 0 {
            return None;
        }
        if kind == OPT_SOURCE_LL {
            return Some(mac_at(f, at + 2));
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Mac = [0x02, 0, 0, 0, 0, 0x11];
    const THEM: Mac = [0x02, 0, 0, 0, 0, 0x99];

    /// A classic BPF interpreter for the few opcodes the filters use, so the filters are
    /// tested on real frames here rather than only in the kernel.
    fn run_filter(prog: &[BpfInsn], f: &[u8]) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            match i.code {
                op::LDB_ABS => match f.get(i.k as usize) {
                    Some(b) => acc = u32::from(*b),
                    None => return 0,
                },
                op::LDH_ABS => match f.get(i.k as usize..i.k as usize + 2) {
                    Some(b) => acc = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                op::JEQ_K => {
                    pc += usize::from(if acc == i.k { i.jt } else { i.jf });
                }
                op::RET_K => return i.k,
                other => panic!("opcode {other:#x} not interpreted"),
            }
            pc += 1;
        }
    }

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        arp(
            1,
            BROADCAST,
            THEM,
            "192.0.2.1".parse().unwrap(),
            [0; 6],
            target,
        )
    }

    /// A solicitation as Linux sends it: to the solicited-node group, with a source
    /// link-layer option.
    fn solicitation(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let dst = solicited_node(&target);
        let mut body = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&target.octets());
        body.extend_from_slice(&[OPT_SOURCE_LL, 1]);
        body.extend_from_slice(&THEM);
        ndp_frame((THEM, multicast_mac(&dst)), (src, dst), body)
    }

    #[test]
    fn arp_request_and_reply() {
        let ip: Ipv4Addr = "192.0.2.200".parse().unwrap();
        let req = parse_arp_request(&arp_request(ip)).expect("request");
        assert_eq!(req.sender_mac, THEM);
        assert_eq!(req.target_ip, ip);
        let reply = arp_reply(ME, &req);
        assert_eq!(reply.len(), 42);
        assert_eq!(&reply[0..6], &THEM, "unicast to the asker");
        assert_eq!(&reply[20..22], &[0, 2], "opcode reply");
        assert_eq!(&reply[22..28], &ME);
        assert_eq!(&reply[28..32], &ip.octets());
        assert_eq!(&reply[38..42], &[192, 0, 2, 1]);
        assert_eq!(parse_arp_request(&reply), None, "a reply is not a request");
        assert_eq!(run_filter(&ARP_FILTER, &arp_request(ip)), 0xffff);
        assert_eq!(run_filter(&ARP_FILTER, &reply), 0);
        let g = gratuitous_arp(ME, ip);
        assert_eq!(&g[0..6], &BROADCAST);
        assert_eq!(&g[28..32], &g[38..42], "sender and target IP are the same");
        assert_eq!(parse_arp_request(&[0u8; 10]), None);
    }

    #[test]
    fn solicitation_and_advertisement() {
        let ll: Ipv6Addr = "fe80::99".parse().unwrap();
        let me: Ipv6Addr = "fe80::11".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::200".parse().unwrap();
        let f = solicitation(ll, target);
        assert_eq!(run_filter(&NDP_FILTER, &f), 0xffff);
        let ns = parse_neighbor_solicitation(&f).expect("solicitation");
        assert_eq!(ns.target, target);
        assert_eq!(ns.src_ip, ll);
        assert_eq!(solicitation_source_ll(&f), Some(THEM));
        assert_eq!(
            solicited_node(&target),
            "ff02::1:ff00:200".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(&solicited_node(&target)),
            [0x33, 0x33, 0xff, 0, 2, 0]
        );

        let na = neighbor_advertisement(ME, me, target, Some((ns.src_mac, ns.src_ip)));
        assert_eq!(&na[0..6], &THEM);
        assert_eq!(
            run_filter(&NDP_FILTER, &na),
            0,
            "advertisements are not let in"
        );
        assert_eq!(parse_neighbor_solicitation(&na), None);
        let icmp = &na[54..];
        assert_eq!(icmp[0], NEIGHBOR_ADVERTISEMENT);
        assert_eq!(icmp[4], 0x60, "solicited + override");
        assert_eq!(&icmp[8..24], &target.octets());
        assert_eq!(&icmp[26..32], &ME);
        // a correct checksum sums to zero over pseudo-header + message
        let dst = ipv6_at(&na, 14 + 24);
        assert_eq!(icmpv6_checksum(&me, &dst, icmp), 0);
        assert_eq!(na[14 + 7], 255, "hop limit");

        let una = neighbor_advertisement(ME, me, target, None);
        assert_eq!(&una[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(una[54 + 4], 0x20, "override only");
        let dst = ipv6_at(&una, 14 + 24);
        assert_eq!(dst, "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(icmpv6_checksum(&me, &dst, &una[54..]), 0);

        // hop limit below 255: not a valid solicitation
        let mut bad = solicitation(ll, target);
        bad[14 + 7] = 64;
        assert_eq!(parse_neighbor_solicitation(&bad), None);
        // other ICMPv6 (echo request) and other IPv6 traffic stay in the kernel
        let mut echo = solicitation(ll, target);
        echo[54] = 128;
        assert_eq!(run_filter(&NDP_FILTER, &echo), 0);
        let mut udp = solicitation(ll, target);
        udp[20] = 17;
        assert_eq!(run_filter(&NDP_FILTER, &udp), 0);
    }
}
