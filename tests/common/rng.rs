//! Two tiny seeded generators, for reproducible random sizes, bytes and
//! parser garbage without a dependency. They differ on purpose: each keeps
//! the inputs the tests using it were written against.

/// A tiny seeded PRNG (xorshift64*): reproducible random sizes and bytes
/// without a dependency.
pub struct Prng(pub u64);

impl Prng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A tiny xorshift64 generator (13/7/17) for the parsers' garbage tests:
/// proptest's per-byte value trees are slow in debug builds, and those
/// tests want volume more than shrinking. (Not [`Prng`], so that the
/// inputs those tests were written against stay the same.)
pub struct XorShift(
    /// The state. Invariant: never zero (zero is a fixed point).
    pub u64,
);

impl XorShift {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Fewer than `max_pieces` pieces run together, each one of
    /// `fragments` or, one time in eight, a random byte: input shaped
    /// enough like a protocol to get deep into a parser, and broken enough
    /// to find where it trusts what it read.
    pub fn garbage(&mut self, fragments: &[&[u8]], max_pieces: usize) -> Vec<u8> {
        let mut input = Vec::new();
        for _ in 0..self.below(max_pieces) {
            if self.below(8) == 0 {
                input.push(self.next() as u8);
            } else {
                input.extend_from_slice(fragments[self.below(fragments.len())]);
            }
        }
        input
    }
}
