//! Prefix-list layout for scale.
//!
//! FRR 8.4 inserts prefix-list entries in time linear in the list's length, so one list of
//! N entries costs O(N²) to load (1 000 entries ≈ 15 s, 10 000 ≈ 25 min, see
//! `reference/frr-lab.md`). We keep lists short:
//! 1. [`collapse`]: a complete, aligned block of same-length prefixes is written as one range
//!    entry (`10.0.0.0/24 ge 32` stands for exactly the 256 /32s of 10.0.0.0/24). Only
//!    complete blocks are collapsed, so the matched set is exactly the input set.
//! 2. [`chunk`]: the entries are split into lists of at most [`MAX_ENTRIES`] entries; the
//!    route-map gets one entry per list.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Largest number of entries in one generated prefix-list.
pub const MAX_ENTRIES: usize = 100;

/// One `permit` entry: `prefix [ge G] [le L]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub prefix: IpNet,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

impl Entry {
    pub fn exact(prefix: IpNet) -> Self {
        Entry {
            prefix,
            ge: None,
            le: None,
        }
    }

    /// Whether `p` matches this entry with FRR's semantics.
    pub fn matches(&self, p: &IpNet) -> bool {
        if !self.prefix.contains(p) || p.prefix_len() < self.prefix.prefix_len() {
            return false;
        }
        if self.ge.is_none() && self.le.is_none() {
            return p.prefix_len() == self.prefix.prefix_len();
        }
        let ge = self.ge.unwrap_or(self.prefix.prefix_len());
        let le = self.le.unwrap_or(self.prefix.max_prefix_len());
        p.prefix_len() >= ge && p.prefix_len() <= le
    }
}

impl fmt::Display for Entry {
    /// `10.0.0.0/24`, `10.0.0.0/24 ge 32`, `10.0.0.0/16 ge 24 le 24` (FRR's order).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(ge) = self.ge {
            write!(f, " ge {ge}")?;
        }
        if let Some(le) = self.le {
            write!(f, " le {le}")?;
        }
        Ok(())
    }
}

/// Cover exactly `prefixes` (one family or both; canonical networks) with as few entries as
/// possible using complete aligned blocks. Output sorted.
pub fn collapse<'a>(prefixes: impl IntoIterator<Item = &'a IpNet>) -> Vec<Entry> {
    // Group by (family, length): only same-length prefixes collapse together. Work on the
    // address bits as integers: each level pairs sorted siblings in one linear pass.
    let mut groups: BTreeMap<(bool, u8), Vec<u128>> = BTreeMap::new();
    for p in prefixes {
        let p = p.trunc();
        let bits = match p.addr() {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        groups
            .entry((p.addr().is_ipv4(), p.prefix_len()))
            .or_default()
            .push(bits);
    }
    let mut out = Vec::new();
    for ((v4, len), mut level) in groups {
        let max: u8 = if v4 { 32 } else { 128 };
        level.sort_unstable();
        level.dedup();
        let mut blocks: Vec<(u128, u8)> = Vec::new();
        let mut m = len;
        while !level.is_empty() {
            if m == 0 {
                blocks.extend(level.iter().map(|a| (*a, 0)));
                break;
            }
            let bit: u128 = 1u128 << (max - m);
            let mut next = Vec::new();
            let mut i = 0;
            while i < level.len() {
                let a = level[i];
                if a & bit == 0 && level.get(i + 1) == Some(&(a | bit)) {
                    next.push(a);
                    i += 2;
                } else {
                    blocks.push((a, m));
                    i += 1;
                }
            }
            level = next;
            m -= 1;
        }
        for (bits, m) in blocks {
            let addr = if v4 {
                IpAddr::V4(Ipv4Addr::from(bits as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(bits))
            };
            let Ok(b) = IpNet::new(addr, m) else {
                continue;
            };
            out.push(if m == len {
                Entry::exact(b)
            } else if len == max {
                Entry {
                    prefix: b,
                    ge: Some(len),
                    le: None,
                }
            } else {
                Entry {
                    prefix: b,
                    ge: Some(len),
                    le: Some(len),
                }
            });
        }
    }
    out.sort();
    out
}

/// Exact entries, no collapsing.
pub fn exact<'a>(prefixes: impl IntoIterator<Item = &'a IpNet>) -> Vec<Entry> {
    let mut v: Vec<Entry> = prefixes.into_iter().map(|p| Entry::exact(*p)).collect();
    v.sort();
    v.dedup();
    v
}

/// Split entries into lists of at most `max` (≥ 1) entries each, at fixed positions.
pub fn chunk<T>(entries: &[T], max: usize) -> std::slice::Chunks<'_, T> {
    entries.chunks(max.max(1))
}

/// Split entries into lists of at most `max` (≥ 1) entries each, with boundaries chosen by
/// the entries themselves (content-defined chunking, as in rsync or backup deduplication): a
/// list ends after an entry whose hash is 0 modulo `max / 2`, or when it reaches `max`.
///
/// Why: with fixed positions, adding or withdrawing one prefix near the start shifts every
/// later entry into another list, and the applier would rewrite thousands of prefix-list
/// lines for a one-service change. Here an insertion or removal changes the list that holds
/// the entry and, rarely, the next one or two, whatever the size of the set.
pub fn chunk_stable(entries: &[Entry], max: usize) -> Vec<&[Entry]> {
    let max = max.max(1);
    let modulus = (max as u64 / 2).max(1);
    let mut out = Vec::with_capacity(entries.len() / (modulus as usize) + 1);
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        if i + 1 - start >= max || fnv1a(e) % modulus == 0 {
            out.push(&entries[start..=i]);
            start = i + 1;
        }
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// FNV-1a over an entry's canonical bytes: stable across processes and Rust versions (the
/// standard library's hasher is not guaranteed to be).
fn fnv1a(e: &Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    match e.prefix {
        IpNet::V4(n) => n.addr().octets().into_iter().for_each(&mut feed),
        IpNet::V6(n) => n.addr().octets().into_iter().for_each(&mut feed),
    }
    feed(e.prefix.prefix_len());
    feed(e.ge.unwrap_or(0));
    feed(e.le.unwrap_or(0));
    h
}

/// Name of the `k`-th (0-based) chunk of list `base`: `base`, `base-2`, `base-3`, ... so the
/// first list keeps its name when a set grows past one list.
pub fn chunk_name(base: &str, k: usize) -> String {
    if k == 0 {
        base.to_string()
    } else {
        format!("{base}-{}", k + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn complete_blocks_collapse_exactly() {
        let all: Vec<IpNet> = (0..=255u8)
            .map(|i| format!("10.0.0.{i}/32").parse().unwrap())
            .collect();
        let e = collapse(&all);
        assert_eq!(
            e.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["10.0.0.0/24 ge 32"]
        );
    }

    #[test]
    fn incomplete_blocks_stay_partial() {
        let v = nets(&["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32"]);
        let e: Vec<String> = collapse(&v).iter().map(|e| e.to_string()).collect();
        assert_eq!(e, ["10.0.0.0/31 ge 32", "10.0.0.2/32"]);
        let v = nets(&[
            "10.0.1.0/24",
            "10.0.0.0/24",
            "2001:db8::/127",
            "2001:db8::1/128",
        ]);
        let e: Vec<String> = collapse(&v).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            [
                "10.0.0.0/23 ge 24 le 24",
                "2001:db8::/127",
                "2001:db8::1/128"
            ]
        );
    }

    #[test]
    fn collapse_preserves_the_set() {
        // Brute force on a small universe: every subset pattern of 16 /28s in 10.0.0.0/24.
        let all: Vec<IpNet> = (0..16u32)
            .map(|i| format!("10.0.0.{}/28", i * 16).parse().unwrap())
            .collect();
        for mask in [
            0u32, 1, 3, 0xff, 0xfffe, 0xffff, 0x0f0f, 0x5555, 0xf0ff, 12345,
        ] {
            let chosen: Vec<IpNet> = (0..16)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| all[i])
                .collect();
            let entries = collapse(&chosen);
            for p in &all {
                let hit = entries.iter().any(|e| e.matches(p));
                assert_eq!(hit, chosen.contains(p), "mask {mask:x} prefix {p}");
            }
            // Nothing of another length matches.
            let other: IpNet = "10.0.0.0/27".parse().unwrap();
            assert!(!entries.iter().any(|e| e.matches(&other)));
        }
    }

    #[test]
    fn chunk_names() {
        assert_eq!(chunk_name("a", 0), "a");
        assert_eq!(chunk_name("a", 1), "a-2");
        let v: Vec<u32> = (0..250).collect();
        let sizes: Vec<usize> = chunk(&v, MAX_ENTRIES).map(|c| c.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn stable_chunks_absorb_single_changes() {
        let entries: Vec<Entry> = (0..5000u32)
            .map(|i| Entry::exact(IpNet::from(IpAddr::V4(Ipv4Addr::from(0xc612_0000 + 2 * i)))))
            .collect();
        let base = chunk_stable(&entries, 100);
        assert!(base.iter().all(|c| !c.is_empty() && c.len() <= 100));
        assert_eq!(base.iter().map(|c| c.len()).sum::<usize>(), entries.len());
        assert!(
            base.len() > 50 && base.len() < 250,
            "about one list per 50 entries: {}",
            base.len()
        );
        for pos in [0usize, 1, 777, 2500, 4999] {
            // remove one entry
            let mut fewer = entries.clone();
            fewer.remove(pos);
            assert!(
                changed_lists(&base, &chunk_stable(&fewer, 100)) <= 3,
                "removal at {pos}"
            );
            // insert one entry (an odd address, between existing ones)
            let mut more = entries.clone();
            more.insert(
                pos,
                Entry::exact(IpNet::from(IpAddr::V4(Ipv4Addr::from(
                    0xc612_0001 + 2 * pos as u32,
                )))),
            );
            more.sort();
            assert!(
                changed_lists(&base, &chunk_stable(&more, 100)) <= 3,
                "insertion at {pos}"
            );
        }
        // fixed-position chunking rewrites everything after the change
        let mut fewer = entries.clone();
        fewer.remove(0);
        let fixed_before: Vec<&[Entry]> = chunk(&entries, 100).collect();
        let fixed_after: Vec<&[Entry]> = chunk(&fewer, 100).collect();
        assert!(changed_lists(&fixed_before, &fixed_after) >= 49);
    }

    /// Lists of `b` that do not appear, identical, in `a`.
    fn changed_lists(a: &[&[Entry]], b: &[&[Entry]]) -> usize {
        b.iter().filter(|l| !a.contains(l)).count()
    }
}
