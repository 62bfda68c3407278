//! Ids as LINE hands them out, from a seed and counters (no randomness source, no clock): the
//! same seed gives the same ids, two seeds give unrelated ones.

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) struct Ids {
    seed: u64,
    counter: u64,
    next_message: u64,
}

impl Ids {
    pub(crate) fn new(seed: u64, first_message_id: u64) -> Self {
        Self {
            seed,
            counter: 0,
            next_message: first_message_id,
        }
    }

    fn next(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        mix(self.seed ^ mix(self.counter))
    }

    /// A request id (`x-line-request-id`), shaped as a version-4 UUID.
    pub(crate) fn request_id(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// A message id: numeric and increasing, as LINE's.
    pub(crate) fn message_id(&mut self) -> String {
        let id = self.next_message;
        self.next_message = self.next_message.wrapping_add(1);
        id.to_string()
    }

    /// An opaque token of `len` characters from `A-Za-z0-9` (quote tokens, link tokens).
    pub(crate) fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut out = String::with_capacity(len);
        let mut bits = 0u64;
        for i in 0..len {
            if i % 10 == 0 {
                bits = self.next();
            }
            out.push(char::from(ALPHABET[(bits % 62) as usize]));
            bits /= 62;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_shaped_and_differ_by_seed() {
        let mut a = Ids::new(1, 100);
        let mut b = Ids::new(2, 100);
        let (x, y) = (a.request_id(), a.request_id());
        assert_ne!(x, y);
        assert_ne!(x, b.request_id());
        assert_eq!(x.len(), 36);
        let parts: Vec<&str> = x.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(x.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
        assert_eq!(Ids::new(1, 100).request_id(), x, "deterministic");
    }

    #[test]
    fn message_ids_count_up_and_tokens_have_the_length_asked() {
        let mut ids = Ids::new(0, 41);
        assert_eq!(ids.message_id(), "41");
        assert_eq!(ids.message_id(), "42");
        let t = ids.token(32);
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, ids.token(32));
    }
}
