//! Framing: cutting a byte stream into messages, and the reverse.
//!
//! A [`Handler::data`](crate::Handler::data) callback receives every byte not
//! yet consumed and returns how many it consumed; whatever it leaves is offered
//! again with more bytes behind it. The decoders here are shaped for exactly
//! that contract: [`Decoder::decode`] looks at the front of the input and
//! returns the first complete frame as a slice borrowed from the input, plus
//! the number of bytes it spans, or `Ok(None)` when the frame is not complete
//! yet. A decoder keeps no state between calls, so feeding the input in any
//! split gives the same frames.
//!
//! Two framings are provided:
//!
//! * [`LineCodec`]: text lines ended by `\n` or `\r\n` (`nc`, `telnet`, SMTP,
//!   Redis inline commands);
//! * [`LengthCodec`]: a big-endian `u32` length, then that many bytes.
//!
//! # Never allocate what the peer declares
//!
//! Decoding allocates nothing: a frame is a borrowed slice. A frame over the
//! codec's maximum is an error *as soon as that is certain*: for a
//! length-prefixed frame, when its 4-byte header arrives (the body is never
//! waited for, let alone buffered); for a line, once more than the maximum has
//! arrived without a newline. Without that rule a peer could make the reactor
//! keep a gigabyte of "partial frame" (the reactor's own
//! [`Config::max_input`](crate::Config::max_input) is only the last line of
//! defence). The Redis protocol parser caps its preallocation the same way.
//!
//! # Example: a line protocol in a `data` callback
//!
//! ```
//! use reactor::codec::{Decoder, LineCodec};
//!
//! // What a `data` callback would do with its `input`.
//! fn on_data(codec: &LineCodec, input: &[u8], lines: &mut Vec<String>) -> Result<usize, String> {
//!     let mut consumed = 0;
//!     while let Some(d) = codec.decode(&input[consumed..]).map_err(|e| e.to_string())? {
//!         lines.push(String::from_utf8_lossy(d.frame).into_owned());
//!         consumed += d.consumed;
//!     }
//!     Ok(consumed) // a partial line stays in the reactor's input buffer
//! }
//!
//! let codec = LineCodec::new(80);
//! let mut lines = Vec::new();
//! let consumed = on_data(&codec, b"hello\r\nworld\npart", &mut lines).unwrap();
//! assert_eq!(lines, ["hello", "world"]);
//! assert_eq!(consumed, 13); // "part" is offered again with what follows
//! ```

use std::fmt;

/// A complete frame found at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The frame's payload, borrowed from the input: the line without its
    /// terminator, or the bytes after a length header.
    pub frame: &'a [u8],
    /// Bytes of input the frame spans, terminator or header included.
    /// Invariant: `frame.len() < consumed` and `consumed <= input.len()`.
    pub consumed: usize,
}

/// Cuts frames off the front of a byte stream without keeping state.
pub trait Decoder {
    /// The first complete frame of `input`; `Ok(None)` if more bytes are
    /// needed; an error if the frame at the front can never be valid. After an
    /// error the stream cannot be resynchronised: close the connection.
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<Decoded<'a>>, DecodeError>;
}

/// Why the front of the input can never become a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More than `max` bytes arrived without the line ending.
    LineTooLong {
        /// The codec's maximum line length, terminator excluded.
        max: usize,
    },
    /// A length header declared more than `max` bytes.
    FrameTooLong {
        /// The length the header declared.
        declared: u32,
        /// The codec's maximum frame length, header excluded.
        max: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::LineTooLong { max } => {
                write!(f, "line too long (more than {max} bytes)")
            }
            DecodeError::FrameTooLong { declared, max } => {
                write!(f, "frame of {declared} bytes is over the {max}-byte limit")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a payload cannot be encoded so that the peer decodes it unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is longer than the codec's maximum.
    TooLong {
        /// The payload's length.
        len: usize,
        /// The codec's maximum.
        max: usize,
    },
    /// A line contains `\n` at byte `at`: it would decode as two lines.
    Newline {
        /// Offset of the newline in the payload.
        at: usize,
    },
    /// A line ends with `\r`: it would decode without it (`\r\n` is a
    /// terminator).
    TrailingCr,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong { len, max } => {
                write!(f, "payload of {len} bytes is over the {max}-byte limit")
            }
            EncodeError::Newline { at } => write!(f, "line contains a newline at byte {at}"),
            EncodeError::TrailingCr => write!(f, "line ends with a carriage return"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Lines ended by `\n` or `\r\n`, each at most `max_line` bytes long
/// (terminator excluded).
///
/// Decoding strips one terminator: `"a\r\n"` and `"a\n"` both give `"a"`; a
/// `\r` anywhere else is part of the line. Encoding appends `\n` and refuses
/// what would not decode back unchanged.
///
/// ```
/// use reactor::codec::{DecodeError, Decoder, LineCodec};
///
/// let codec = LineCodec::new(8);
/// let d = codec.decode(b"hi\r\nnext").unwrap().unwrap();
/// assert_eq!((d.frame, d.consumed), (&b"hi"[..], 4));
/// assert_eq!(codec.decode(b"no newline yet"), Err(DecodeError::LineTooLong { max: 8 }));
/// assert_eq!(codec.decode(b"short"), Ok(None));
///
/// let mut out = Vec::new();
/// codec.encode(b"hello", &mut out).unwrap();
/// assert_eq!(out, b"hello\n");
/// assert!(codec.encode(b"two\nlines", &mut out).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCodec {
    /// Longest line accepted or produced, terminator excluded.
    max_line: usize,
}

impl LineCodec {
    /// A codec for lines of at most `max_line` bytes, terminator excluded.
    pub const fn new(max_line: usize) -> Self {
        LineCodec { max_line }
    }

    /// The longest line accepted, terminator excluded.
    pub const fn max_line(&self) -> usize {
        self.max_line
    }

    /// Appends `line` and `\n` to `out`. Fails, leaving `out` unchanged, if
    /// `line` is too long, contains `\n`, or ends with `\r`.
    pub fn encode(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if line.len() > self.max_line {
            return Err(EncodeError::TooLong {
                len: line.len(),
                max: self.max_line,
            });
        }
        if let Some(at) = line.iter().position(|&b| b == b'\n') {
            return Err(EncodeError::Newline { at });
        }
        if line.last() == Some(&b'\r') {
            return Err(EncodeError::TrailingCr);
        }
        out.reserve(line.len() + 1);
        out.extend_from_slice(line);
        out.push(b'\n');
        Ok(())
    }
}

impl Decoder for LineCodec {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<Decoded<'a>>, DecodeError> {
        // A valid line and its terminator fit in `max_line + 2` bytes, so
        // never scan further: an endless line costs O(max_line) per call, not
        // O(input), and is rejected as soon as it cannot be valid.
        let window = &input[..input.len().min(self.max_line.saturating_add(2))];
        let too_long = DecodeError::LineTooLong { max: self.max_line };
        match window.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                let line = &input[..newline];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > self.max_line {
                    return Err(too_long);
                }
                Ok(Some(Decoded {
                    frame: line,
                    consumed: newline + 1,
                }))
            }
            None => {
                // Undecided while the bytes seen could still be a line of
                // `max_line` bytes, possibly followed by the `\r` of a `\r\n`.
                // (`len - 1` rather than `max_line + 1`: no overflow at usize::MAX.)
                let could_fit = input.len() <= self.max_line
                    || (input.len() - 1 == self.max_line && input[self.max_line] == b'\r');
                if could_fit {
                    Ok(None)
                } else {
                    Err(too_long)
                }
            }
        }
    }
}

/// Frames of a big-endian `u32` length followed by that many bytes, at most
/// `max_frame` of them.
///
/// An oversized frame is refused on its header, before any of its body is
/// kept, and the decoder never allocates for a declared length.
///
/// ```
/// use reactor::codec::{DecodeError, Decoder, LengthCodec};
///
/// let codec = LengthCodec::new(1024);
/// let mut wire = Vec::new();
/// codec.encode(b"ping", &mut wire).unwrap();
/// assert_eq!(wire, b"\0\0\0\x04ping");
/// let d = codec.decode(&wire).unwrap().unwrap();
/// assert_eq!((d.frame, d.consumed), (&b"ping"[..], 8));
///
/// // A header claiming 4 GiB is an error at once, with no body in sight.
/// assert_eq!(
///     codec.decode(&[0xff, 0xff, 0xff, 0xff]),
///     Err(DecodeError::FrameTooLong { declared: u32::MAX, max: 1024 })
/// );
///
/// // Large payloads need not be copied: write the header, then the payload.
/// assert_eq!(codec.header(70_000), Err(reactor::codec::EncodeError::TooLong { len: 70_000, max: 1024 }));
/// assert_eq!(codec.header(4), Ok([0, 0, 0, 4]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthCodec {
    /// Largest payload accepted or produced, header excluded. Invariant:
    /// at most `u32::MAX` (`new` clamps it), so a valid length fits a header.
    max_frame: usize,
}

impl LengthCodec {
    /// Bytes in a length header.
    pub const HEADER_LEN: usize = 4;

    /// A codec for payloads of at most `max_frame` bytes (clamped to
    /// `u32::MAX`, the most a header can declare).
    pub fn new(max_frame: usize) -> Self {
        LengthCodec {
            max_frame: max_frame.min(u32::MAX as usize),
        }
    }

    /// The largest payload accepted, header excluded.
    pub const fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The header announcing a payload of `len` bytes, for callers that write
    /// the payload separately (without copying it behind the header).
    pub fn header(&self, len: usize) -> Result<[u8; 4], EncodeError> {
        if len > self.max_frame {
            return Err(EncodeError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        // Cannot truncate: `max_frame <= u32::MAX`.
        Ok((len as u32).to_be_bytes())
    }

    /// Appends the header and `payload` to `out`. Fails, leaving `out`
    /// unchanged, if `payload` is over the maximum.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let header = self.header(payload.len())?;
        out.reserve(Self::HEADER_LEN + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(())
    }
}

impl Decoder for LengthCodec {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<Decoded<'a>>, DecodeError> {
        let Some((header, rest)) = input.split_first_chunk::<4>() else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes(*header);
        // Checked before looking at the body: the declared length is the
        // peer's claim, not memory anyone should set aside.
        if declared as usize > self.max_frame {
            return Err(DecodeError::FrameTooLong {
                declared,
                max: self.max_frame,
            });
        }
        let len = declared as usize;
        if rest.len() < len {
            return Ok(None);
        }
        Ok(Some(Decoded {
            frame: &rest[..len],
            consumed: Self::HEADER_LEN + len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_exactly_max_is_accepted_with_either_terminator() {
        let codec = LineCodec::new(3);
        assert_eq!(codec.decode(b"abc"), Ok(None));
        assert_eq!(codec.decode(b"abc\r"), Ok(None));
        assert_eq!(
            codec.decode(b"abcd"),
            Err(DecodeError::LineTooLong { max: 3 })
        );
        assert_eq!(
            codec.decode(b"abc\r\r"),
            Err(DecodeError::LineTooLong { max: 3 })
        );
        let d = codec.decode(b"abc\r\n").unwrap().unwrap();
        assert_eq!((d.frame, d.consumed), (&b"abc"[..], 5));
        let d = codec.decode(b"abc\n").unwrap().unwrap();
        assert_eq!((d.frame, d.consumed), (&b"abc"[..], 4));
        assert_eq!(
            codec.decode(b"ab\r\r\n").unwrap().unwrap().frame,
            &b"ab\r"[..]
        );
    }

    #[test]
    fn empty_lines_and_zero_max() {
        let codec = LineCodec::new(0);
        assert_eq!(codec.decode(b"\n").unwrap().unwrap().consumed, 1);
        assert_eq!(codec.decode(b"\r\n").unwrap().unwrap().consumed, 2);
        assert_eq!(codec.decode(b""), Ok(None));
        assert!(codec.decode(b"x").is_err());
    }

    #[test]
    fn length_frames_wait_for_header_and_body() {
        let codec = LengthCodec::new(5);
        assert_eq!(codec.decode(&[0, 0, 0]), Ok(None));
        assert_eq!(codec.decode(&[0, 0, 0, 2, b'a']), Ok(None));
        let d = codec.decode(&[0, 0, 0, 0]).unwrap().unwrap();
        assert_eq!((d.frame, d.consumed), (&b""[..], 4));
        assert!(codec.decode(&[0, 0, 0, 6]).is_err());
        assert!(codec.encode(&[0; 6], &mut Vec::new()).is_err());
    }
}
