//! The byte stream every connection sends, and the check of its echo.
//!
//! Checking needs no stored copy: connection `c`'s stream is a window onto
//! one pseudo-random pattern, starting at an offset chosen by `c` (stream
//! byte `p` is `pattern[(p + c * 7919) % PERIOD]`). A batch of messages is
//! one contiguous slice of the pattern (one `write`), and the echo is
//! compared in place against the same slice (a `memcmp`). A lost,
//! duplicated, reordered or foreign byte shifts the stream and is caught.

/// Length of the pattern's period. A prime, so no message size divides it
/// and consecutive messages never repeat the same bytes.
const PERIOD: usize = 65_521;
/// Connection `c` starts its stream at offset `c * CONN_STRIDE` in the
/// pattern; coprime with `PERIOD`, so up to `PERIOD` connections all differ.
const CONN_STRIDE: u64 = 7_919;

/// The byte stream every connection is a window onto.
pub struct Pattern {
    /// `PERIOD + window` pseudo-random bytes, where bytes `PERIOD..` repeat
    /// the first ones: any run of at most `window` bytes starting below
    /// `PERIOD` is one contiguous slice.
    bytes: Vec<u8>,
    /// Longest slice ever asked for (one batch: `depth * size`).
    window: usize,
}

impl Pattern {
    /// Builds the pattern for slices of at most `window` bytes.
    pub fn new(window: usize) -> Pattern {
        let mut bytes = Vec::with_capacity(PERIOD + window);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..PERIOD {
            // xorshift64*: cheap, and no byte value is favoured.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            bytes.push((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8);
        }
        for i in 0..window {
            bytes.push(bytes[i % PERIOD]);
        }
        Pattern { bytes, window }
    }

    /// Where connection `conn`'s stream byte `pos` sits in `bytes`.
    fn offset(conn: u64, pos: u64) -> usize {
        ((pos + conn * CONN_STRIDE) % PERIOD as u64) as usize
    }

    /// `len <= window` bytes of `conn`'s stream from `pos`.
    pub fn slice(&self, conn: u64, pos: u64, len: usize) -> &[u8] {
        debug_assert!(len <= self.window);
        let start = Self::offset(conn, pos);
        &self.bytes[start..start + len]
    }

    /// Compares `input` with `conn`'s stream from `pos`; returns how many
    /// bytes differ. The fast path is one `memcmp` per `window` bytes.
    pub fn mismatches(&self, conn: u64, mut pos: u64, mut input: &[u8]) -> u64 {
        let mut wrong = 0;
        while !input.is_empty() {
            let start = Self::offset(conn, pos);
            let len = input.len().min(self.bytes.len() - start);
            let (head, rest) = input.split_at(len);
            let expected = &self.bytes[start..start + len];
            if head != expected {
                wrong += head.iter().zip(expected).filter(|(a, b)| a != b).count() as u64;
            }
            pos += len as u64;
            input = rest;
        }
        wrong
    }
}
