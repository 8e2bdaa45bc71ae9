//! Membership packet authentication: `payload ‖ HMAC-SHA256(key, payload)[..16]`.
//!
//! Without a key packets travel as they are (a warning is logged at start). A wrong or
//! missing tag drops the packet: a speaker with another key never joins, and nobody can
//! declare a node down from outside.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the truncated tag (128 bits, as in RFC 4868's truncated HMAC-SHA-256 uses).
pub const TAG_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The shared key, or none. Its `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct Key(Option<Vec<u8>>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Key(<redacted>)"),
            None => f.write_str("Key(none)"),
        }
    }
}

impl Key {
    /// Upstream's Secret holds a base64 string and its bytes are the key material; any
    /// non-empty string works. Surrounding whitespace (a file's newline) is ignored.
    pub fn new(secret: &str) -> Option<Self> {
        let s = secret.trim();
        (!s.is_empty()).then(|| Key(Some(s.as_bytes().to_vec())))
    }

    pub fn none() -> Self {
        Key(None)
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Bytes the tag adds to a packet.
    pub fn tag_len(&self) -> usize {
        if self.is_set() {
            TAG_LEN
        } else {
            0
        }
    }

    fn mac(key: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        m.update(payload);
        m
    }

    /// Appends the tag to `packet`.
    pub fn seal(&self, packet: &mut Vec<u8>) {
        if let Some(k) = &self.0 {
            let tag = Self::mac(k, packet).finalize().into_bytes();
            packet.extend_from_slice(&tag[..TAG_LEN]);
        }
    }

    /// The payload of a well-tagged packet (in constant time over the tag).
    pub fn open<'a>(&self, packet: &'a [u8]) -> Option<&'a [u8]> {
        let Some(k) = &self.0 else {
            return Some(packet);
        };
        let split = packet.len().checked_sub(TAG_LEN)?;
        let (payload, tag) = packet.split_at(split);
        Self::mac(k, payload).verify_truncated_left(tag).ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_opens_only_with_the_same_key() {
        let k = Key::new("c2VjcmV0LWtleQ==\n").unwrap();
        let mut p = b"swim".to_vec();
        k.seal(&mut p);
        assert_eq!(p.len(), 4 + TAG_LEN);
        assert_eq!(k.open(&p), Some(&b"swim"[..]));
        let other = Key::new("another").unwrap();
        assert_eq!(other.open(&p), None);
        // tampered payload or tag
        let mut bad = p.clone();
        bad[0] ^= 1;
        assert_eq!(k.open(&bad), None);
        let mut bad = p.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(&bad), None);
        // too short to hold a tag
        assert_eq!(k.open(&p[..TAG_LEN - 1]), None);
        // an unkeyed speaker's packet is refused by a keyed one
        assert_eq!(k.open(b"swim"), None);
    }

    #[test]
    fn without_a_key_packets_pass_unchanged() {
        let k = Key::none();
        let mut p = b"swim".to_vec();
        k.seal(&mut p);
        assert_eq!(p, b"swim");
        assert_eq!(k.open(&p), Some(&b"swim"[..]));
        assert!(Key::new("  \n").is_none(), "a blank secret is no key");
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let k = Key::new("hunter2").unwrap();
        assert!(!format!("{k:?}").contains("hunter2"));
    }
}
