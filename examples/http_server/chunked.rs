//! Chunked request bodies (RFC 9112 §7.1) for the `http_server` example:
//! [`Chunked`] walks a body incrementally, handing its data to the caller
//! (who keeps it for `/echo` or drops it), and refuses bad framing, a bare
//! CR, a size that overflows, and bodies over the caller's limit.
//!
//! Apart from the head parser (`parse.rs`) because the two work in
//! opposite ways: a head is parsed again from its start until complete,
//! which its 8 KiB cap keeps cheap, while a body can be long, so its state
//! is kept between calls and its data handed on as it arrives, never copied here.
//! Like `parse.rs`, this file is also included by `tests/http_parse.rs`,
//! which fuzzes the decoder without a socket.

use super::parse::{trim, MAX_HEAD};

/// Longest chunk-size line (size, extensions, CRLF) and longest trailer
/// line accepted; a peer that sends an endless one is refused.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Bad chunk framing: `400`.
    Malformed(&'static str),
    /// The chunks add up to more than the caller's limit: `413`.
    TooLarge,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a `size[;ext]` line.
    Size,
    /// Inside a chunk's data: this many bytes remain.
    Data(u64),
    /// After a chunk's data: expecting its CRLF.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines until a blank one.
    Trailer,
}

/// Reads a chunked body (RFC 9112 §7.1) incrementally.
///
/// Nothing is buffered here: data bytes go to the caller's sink as they
/// arrive, and an
/// incomplete size or trailer line is left unconsumed for the caller's
/// input buffer to hold until its end arrives (at most [`MAX_CHUNK_LINE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    /// Where the body is.
    state: ChunkState,
    /// Data bytes declared so far. Invariant: at most the caller's limit.
    total: u64,
    /// Trailer bytes seen so far. Invariant: at most `MAX_HEAD`.
    trailer: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: ChunkState::Size,
            total: 0,
            trailer: 0,
        }
    }
}

impl Chunked {
    /// Consumes what it can of `input`, passing each run of data bytes to
    /// `sink`; returns the bytes consumed and whether the body ended.
    /// Refuses bodies over `limit` data bytes (before any of an offending
    /// chunk reaches `sink`).
    pub fn feed(
        &mut self,
        input: &[u8],
        limit: u64,
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<(usize, bool), ChunkError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                ChunkState::Data(left) => {
                    let take = left.min(rest.len() as u64);
                    sink(&rest[..take as usize]);
                    pos += take as usize;
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                    if take < left {
                        return Ok((pos, false));
                    }
                }
                ChunkState::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = ChunkState::Size;
                    }
                    [b'\n', ..] => {
                        pos += 1;
                        self.state = ChunkState::Size;
                    }
                    [] | [b'\r'] => return Ok((pos, false)),
                    _ => return Err(ChunkError::Malformed("chunk data not followed by CRLF")),
                },
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        return if rest.len() > MAX_CHUNK_LINE {
                            Err(ChunkError::Malformed("chunk line too long"))
                        } else {
                            Ok((pos, false))
                        };
                    };
                    if newline >= MAX_CHUNK_LINE {
                        return Err(ChunkError::Malformed("chunk line too long"));
                    }
                    let mut line = &rest[..newline];
                    if let [body @ .., b'\r'] = line {
                        line = body;
                    }
                    // A CR left inside the line (say in an extension) is
                    // one that another parser might take as a line end.
                    if line.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
                        return Err(ChunkError::Malformed("control character in chunk line"));
                    }
                    pos += newline + 1;
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            return Ok((pos, true));
                        }
                        self.trailer += newline + 1;
                        if self.trailer > MAX_HEAD {
                            return Err(ChunkError::Malformed("trailer too long"));
                        }
                        continue;
                    }
                    let size = parse_chunk_size(line)?;
                    self.total = self.total.saturating_add(size);
                    if self.total > limit {
                        return Err(ChunkError::TooLarge);
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
            }
        }
    }
}

/// Most significant hex digits a chunk size may have: 2^60 bytes is past
/// any limit, and the sum of sizes cannot overflow before the limit is hit.
pub const MAX_SIZE_DIGITS: usize = 15;

/// `1*HEXDIG [ ; extensions ]`: the size; extensions are ignored. Leading
/// zeros (`000a`) are allowed, however many, as the grammar allows.
fn parse_chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    if digits.is_empty() {
        return Err(ChunkError::Malformed("bad chunk size"));
    }
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    let digits = &digits[zeros..];
    if digits.len() > MAX_SIZE_DIGITS {
        return Err(ChunkError::Malformed("chunk size overflow"));
    }
    let rest = trim(rest);
    if !rest.is_empty() && rest[0] != b';' {
        return Err(ChunkError::Malformed("bad chunk size"));
    }
    let size = digits.iter().fold(0u64, |n, &b| {
        n * 16 + u64::from((b as char).to_digit(16).unwrap_or(0))
    });
    Ok(size)
}
