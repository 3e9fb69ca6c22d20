//! Every fingerprint rostersync keeps, in one place: of keys and emails, of a profile, of a
//! grant list and of the state a row asks for.
//!
//! They are stored in every ledger, so they must never change for the same input: XXH3 is a
//! published algorithm (unlike `DefaultHasher`, which may change between Rust releases). A
//! changed digest would make the next night see every user as changed and update everyone.

use super::Grant;

/// A stable 64-bit fingerprint (XXH3) of a key or an email.
pub fn fingerprint(value: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value.as_bytes())
}

/// XXH3-64 over parts, each followed by a unit separator. The parts are gathered in a buffer
/// and hashed at once, which gives exactly the digest the streaming hasher gives: that
/// hasher's state is over half a kilobyte, set up and copied part by part, a good share of a
/// first import's time.
struct PartsHasher(Vec<u8>);

impl PartsHasher {
    fn new() -> Self {
        PartsHasher(Vec::with_capacity(256))
    }

    fn part(&mut self, part: &str) -> &mut Self {
        self.0.extend_from_slice(part.as_bytes());
        self.0.push(0x1f);
        self
    }

    /// Several values as one part, joined by `;`.
    fn joined<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.0.push(b';');
            }
            self.0.extend_from_slice(value.as_bytes());
        }
        self.0.push(0x1f);
        self
    }

    fn finish(&self) -> i64 {
        xxhash_rust::xxh3::xxh3_64(&self.0) as i64
    }
}

/// The fields of a profile its fingerprint covers, borrowed from wherever they are.
pub struct ProfileFields<'a> {
    pub key: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub client: &'a str,
    pub locations: &'a [String],
    pub position: Option<&'a str>,
    pub program_type: Option<&'a str>,
}

/// Fingerprint of everything an update sends except status (handled on its own).
pub fn profile_hash(fields: &ProfileFields<'_>) -> i64 {
    PartsHasher::new()
        .part(fields.key)
        .part(fields.first_name)
        .part(fields.last_name)
        .part(fields.email)
        .part(fields.role)
        .part(fields.client)
        .joined(fields.locations.iter().map(String::as_str))
        .part(fields.position.unwrap_or(""))
        .part(fields.program_type.unwrap_or(""))
        .finish()
}

/// Fingerprint of what a user's status, profile and content amount to: equal for two states
/// exactly when the plan would leave one of them as it is for the other. An inactive user's
/// profile and content do not matter (nothing is sent for them).
pub fn state_hash(active: bool, profile_hash: i64, content_hash: i64) -> i64 {
    if !active {
        return 0;
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&profile_hash.to_le_bytes());
    bytes[8..].copy_from_slice(&content_hash.to_le_bytes());
    match xxhash_rust::xxh3::xxh3_64(&bytes) as i64 {
        0 => 1,
        hash => hash,
    }
}

/// Fingerprint of a sorted grant list.
pub fn content_hash(items: &[Grant]) -> i64 {
    let mut hasher = PartsHasher::new();
    for item in items {
        hasher.part(&item.id).part(&item.kind);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_hash(parts: &[&str]) -> i64 {
        let mut hasher = PartsHasher::new();
        for part in parts {
            hasher.part(part);
        }
        hasher.finish()
    }

    #[test]
    fn parts_hash_as_the_streaming_hasher_did_whatever_the_length() {
        // Lengths around XXH3's internal boundaries (16, 128, 240 bytes, its 256-byte
        // buffer, its 1 KiB stripes): the digest must not move for any profile.
        for n in [
            0, 1, 15, 16, 17, 100, 127, 128, 129, 239, 240, 241, 255, 256, 257, 1100,
        ] {
            let long = "x".repeat(n);
            let parts = [long.as_str(), "Ana", "", "ana@example.com"];
            let mut streaming = xxhash_rust::xxh3::Xxh3::new();
            for part in parts {
                streaming.update(part.as_bytes());
                streaming.update(b"\x1f");
            }
            assert_eq!(parts_hash(&parts), streaming.digest() as i64, "length {n}");
        }
    }

    #[test]
    fn fingerprints_are_stable_across_builds() {
        // XXH3-64 of "a\x1fb\x1f", computed independently (Python's xxhash). If this
        // changes, every ledger in the field sees every user as changed and the next night
        // updates everyone.
        assert_eq!(parts_hash(&["a", "b"]) as u64, 0xee97_c201_64a5_f646);
        assert_ne!(parts_hash(&["ab", ""]), parts_hash(&["a", "b"]));
    }

    #[test]
    fn a_profile_fingerprint_is_the_one_every_ledger_holds() {
        // Pinned: the digest of this profile as every earlier release computed it.
        let locations = vec!["l1".to_owned(), "l2".to_owned()];
        let fields = ProfileFields {
            key: "E1",
            first_name: "Ana",
            last_name: "Lima",
            email: "ana@example.com",
            role: "Learner",
            client: "c1",
            locations: &locations,
            position: Some("Nurse"),
            program_type: None,
        };
        assert_eq!(
            profile_hash(&fields),
            parts_hash(&[
                "E1",
                "Ana",
                "Lima",
                "ana@example.com",
                "Learner",
                "c1",
                "l1;l2",
                "Nurse",
                ""
            ])
        );
    }
}
