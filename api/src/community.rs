//! BGP community syntax shared by MetalLB (`BGPAdvertisement.communities`, `Community` CRs) and
//! frr-k8s (`withCommunity[].community`): standard `A:B` (two 16-bit numbers) or large
//! `large:A:B:C` (three 32-bit numbers). No well-known names and no extended communities,
//! exactly like upstream.

use std::fmt;

/// A parsed BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BgpCommunity {
    Standard(u16, u16),
    Large(u32, u32, u32),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    #[error("{0:?} is not a valid community: expected \"A:B\" with A and B in 0-65535, or \"large:A:B:C\" with 32-bit numbers")]
    Invalid(String),
}

impl BgpCommunity {
    pub fn parse(s: &str) -> Result<Self, CommunityError> {
        let bad = || CommunityError::Invalid(s.to_string());
        if let Some(rest) = s.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() != 3 {
                return Err(bad());
            }
            let n: Vec<u32> = parts
                .iter()
                .map(|p| {
                    if p.chars().all(|c| c.is_ascii_digit()) {
                        p.parse().ok()
                    } else {
                        None
                    }
                })
                .collect::<Option<_>>()
                .ok_or_else(bad)?;
            return Ok(BgpCommunity::Large(n[0], n[1], n[2]));
        }
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let num = |p: &str| -> Option<u16> {
            if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
                p.parse().ok()
            } else {
                None
            }
        };
        Ok(BgpCommunity::Standard(
            num(a).ok_or_else(bad)?,
            num(b).ok_or_else(bad)?,
        ))
    }

    pub fn is_large(&self) -> bool {
        matches!(self, BgpCommunity::Large(..))
    }

    /// MetalLB's heuristic: a string that is not a valid community and has no `:` (or a shape
    /// that cannot be a community at all) may be the name of a `Community` alias.
    pub fn could_be_alias(s: &str) -> bool {
        !s.contains(':')
    }
}

impl fmt::Display for BgpCommunity {
    /// FRR syntax: `A:B` for standard, `A:B:C` for large (the `large:` prefix is ours).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BgpCommunity::Standard(a, b) => write!(f, "{a}:{b}"),
            BgpCommunity::Large(a, b, c) => write!(f, "{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standard_and_large() {
        assert_eq!(
            BgpCommunity::parse("65535:65282"),
            Ok(BgpCommunity::Standard(65535, 65282))
        );
        assert_eq!(
            BgpCommunity::parse("large:123:456:789"),
            Ok(BgpCommunity::Large(123, 456, 789))
        );
        assert_eq!(
            BgpCommunity::parse("large:4294967295:0:1")
                .unwrap()
                .to_string(),
            "4294967295:0:1"
        );
    }

    #[test]
    fn rejects_bad_values() {
        for s in [
            "65536:1",
            "1:65536",
            "a:b",
            "1:2:3",
            "large:1:2",
            "large:1:2:3:4",
            "large:4294967296:1:1",
            ":1",
            "1:",
            "no-export",
            "-1:2",
        ] {
            assert!(BgpCommunity::parse(s).is_err(), "{s}");
        }
    }
}
