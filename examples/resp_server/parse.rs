//! RESP2 request parsing for the `resp_server` example: multibulk commands
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every client library sends) and
//! inline commands (`PING\r\n`, what a person types into `nc`).
//!
//! This file is a module of the example and is also included by
//! `tests/resp_parse.rs`, so the parser is fuzzed on its own without a
//! socket (and by `tests/resp.rs`, for [`MAX_INLINE`]). It lives in a
//! directory without `main.rs`, so cargo does not build it as an example of
//! its own.
//!
//! The parser never allocates from a length the peer declares, which is the
//! whole defence against `*2147483647` or `$500000000` followed by silence:
//! arguments are recorded as offsets into the input slice, the offsets vector
//! grows only as arguments actually arrive (its first reservation is capped
//! at 1024, as Redis caps its argv), and a declared bulk length only tells the
//! parser how many bytes to wait for. The bytes themselves wait in the
//! reactor's input buffer, whose cap (`Config::max_input`) bounds a
//! connection's query buffer the way Redis's `client-query-buffer-limit` does.
//!
//! Parsing is incremental: the parser keeps its position inside the command
//! being received, so a large command that arrives in many reads is scanned
//! once, not once per read. This relies on the reactor's contract that bytes
//! left unconsumed are offered again, unchanged, at the start of the next
//! `data` call.
//!
//! Error messages and the order of checks follow Redis 7's
//! `processMultibulkBuffer` and `processInlineBuffer` (networking.c), so a
//! client sees the same `-ERR Protocol error: ...` from this server as from
//! Redis.

use std::fmt;

/// Largest bulk string accepted (Redis's default `proto-max-bulk-len`).
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// Longest inline command, or `*N` / `$N` line, waited for without its line
/// end (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;
/// Most argument slots reserved up front, whatever `*N` declares.
pub const ARGV_PREALLOC: usize = 1024;

/// A request that cannot be parsed. The connection is answered with
/// [`ProtocolError::reply`] and closed, as Redis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*N` where N is not a number or exceeds `i32::MAX`.
    InvalidMultibulkLength,
    /// `$N` where N is not a number, is negative or exceeds [`MAX_BULK`].
    InvalidBulkLength,
    /// An argument of a multibulk command did not start with `$`; holds the
    /// byte found instead.
    ExpectedDollar(u8),
    /// No line end within [`MAX_INLINE`] bytes of a `*N` line.
    TooBigMultibulkCount,
    /// No line end within [`MAX_INLINE`] bytes of a `$N` line.
    TooBigBulkCount,
    /// No newline within [`MAX_INLINE`] bytes of an inline command.
    TooBigInline,
    /// An inline command with an unterminated quote.
    UnbalancedQuotes,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Protocol error: ")?;
        match self {
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::ExpectedDollar(byte) => {
                // Redis prints the raw byte, but error replies may not hold
                // CR or LF; Redis turns those into spaces, and so do we.
                let shown = match byte {
                    b'\r' | b'\n' => ' ',
                    b => char::from(*b),
                };
                write!(f, "expected '$', got '{shown}'")
            }
            ProtocolError::TooBigMultibulkCount => f.write_str("too big mbulk count string"),
            ProtocolError::TooBigBulkCount => f.write_str("too big bulk count string"),
            ProtocolError::TooBigInline => f.write_str("too big inline request"),
            ProtocolError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
        }
    }
}

impl ProtocolError {
    /// The error reply Redis sends for this error, CRLF included.
    pub fn reply(&self) -> String {
        format!("-ERR {self}\r\n")
    }
}

/// What [`Parser::parse`] found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole command yet; consume nothing and call again with more.
    Incomplete,
    /// A request with no arguments (`*0`, `*-1`, a blank inline line) of
    /// this many bytes: consume it and answer nothing.
    Empty(usize),
    /// A whole command of this many bytes; its arguments are available
    /// through [`Parser::arg`] until the next call to `parse`.
    Command(usize),
}

/// Incremental parser for one connection's requests.
///
/// Positions are offsets from the first byte of the command being parsed,
/// which is the first byte of the slice passed to [`Parser::parse`].
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of the current command parsed so far. Invariant: within the
    /// bytes seen; 0 when no command is in progress.
    pos: usize,
    /// Multibulk in progress: arguments still expected. `None` before the
    /// `*N` line was read (or for inline commands).
    remaining: Option<usize>,
    /// The `$N` line of the next argument was read; its N bytes (plus CRLF)
    /// are awaited. Invariant: `Some` only inside a multibulk.
    bulk: Option<usize>,
    /// Where each argument is: `(start, len)`, into the input for multibulk
    /// commands and into `inline` for inline ones. Grows only as arguments
    /// arrive.
    args: Vec<(usize, usize)>,
    /// The unquoted arguments of an inline command, back to back. Inline
    /// commands are the rare, human path, so they may allocate.
    inline: Vec<u8>,
    /// Whether `args` points into `inline`.
    is_inline: bool,
    /// The last call returned a command: the next call starts afresh.
    done: bool,
}

impl Parser {
    /// Parses the command at the start of `input`. `input` must begin with
    /// the bytes given to the previous call unless that call returned
    /// `Empty` or `Command` (whose bytes the caller then consumed).
    pub fn parse(&mut self, input: &[u8]) -> Result<Parsed, ProtocolError> {
        if self.done {
            self.reset();
        }
        if self.remaining.is_none() {
            match input.first() {
                None => return Ok(Parsed::Incomplete),
                Some(b'*') => {}
                Some(_) => return self.parse_inline(input),
            }
            let Some(line_end) = find_cr(input, 1) else {
                return if input.len() > MAX_INLINE {
                    Err(ProtocolError::TooBigMultibulkCount)
                } else {
                    Ok(Parsed::Incomplete)
                };
            };
            if line_end + 2 > input.len() {
                return Ok(Parsed::Incomplete);
            }
            let count = parse_int(&input[1..line_end])
                .filter(|&n| n <= i64::from(i32::MAX))
                .ok_or(ProtocolError::InvalidMultibulkLength)?;
            if count <= 0 {
                self.done = true;
                return Ok(Parsed::Empty(line_end + 2));
            }
            let count = count as usize;
            self.pos = line_end + 2;
            self.remaining = Some(count);
            self.args.reserve(count.min(ARGV_PREALLOC));
        }
        while let Some(remaining @ 1..) = self.remaining {
            let len = match self.bulk {
                Some(len) => len,
                None => {
                    if self.pos >= input.len() {
                        return Ok(Parsed::Incomplete);
                    }
                    let Some(line_end) = find_cr(input, self.pos) else {
                        return if input.len() - self.pos > MAX_INLINE {
                            Err(ProtocolError::TooBigBulkCount)
                        } else {
                            Ok(Parsed::Incomplete)
                        };
                    };
                    if line_end + 2 > input.len() {
                        return Ok(Parsed::Incomplete);
                    }
                    if input[self.pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(input[self.pos]));
                    }
                    let len = parse_int(&input[self.pos + 1..line_end])
                        .filter(|&n| n >= 0 && n as u64 <= MAX_BULK as u64)
                        .ok_or(ProtocolError::InvalidBulkLength)?
                        as usize;
                    self.pos = line_end + 2;
                    self.bulk = Some(len);
                    len
                }
            };
            // Like Redis, the two bytes after the payload are taken to be
            // CRLF without looking.
            if input.len() - self.pos < len + 2 {
                return Ok(Parsed::Incomplete);
            }
            self.args.push((self.pos, len));
            self.pos += len + 2;
            self.bulk = None;
            self.remaining = Some(remaining - 1);
        }
        self.done = true;
        Ok(Parsed::Command(self.pos))
    }

    /// Arguments of the command last returned, command name first.
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` of the command last returned; `input` is the slice that
    /// was passed to [`Parser::parse`].
    pub fn arg<'a>(&'a self, input: &'a [u8], i: usize) -> &'a [u8] {
        let (start, len) = self.args[i];
        let source = if self.is_inline { &self.inline } else { input };
        &source[start..start + len]
    }

    /// Heap slots held for argument positions (for the memory-bound tests).
    #[allow(dead_code)] // only tests/resp_parse.rs asks
    pub fn args_capacity(&self) -> usize {
        self.args.capacity()
    }

    /// Forgets the command last returned once the caller is done with its
    /// arguments, releasing what a huge command made large now rather than
    /// at the next `parse` (which an idle connection may not call for a long
    /// time). Does nothing while a command is still being received.
    pub fn finish(&mut self) {
        if self.done {
            self.reset();
        }
    }

    /// Forgets the finished command, keeping allocations unless a huge
    /// command left them large.
    fn reset(&mut self) {
        self.pos = 0;
        self.remaining = None;
        self.bulk = None;
        self.args.clear();
        self.inline.clear();
        self.is_inline = false;
        self.done = false;
        if self.args.capacity() > ARGV_PREALLOC {
            self.args = Vec::new();
        }
        if self.inline.capacity() > MAX_INLINE {
            self.inline = Vec::new();
        }
    }

    /// An inline command: one line of space-separated, optionally quoted
    /// arguments (Redis's `sdssplitargs` rules).
    fn parse_inline(&mut self, input: &[u8]) -> Result<Parsed, ProtocolError> {
        // `pos` remembers how far an earlier call searched for the newline.
        let Some(newline) = input[self.pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + self.pos)
        else {
            if input.len() > MAX_INLINE {
                return Err(ProtocolError::TooBigInline);
            }
            self.pos = input.len();
            return Ok(Parsed::Incomplete);
        };
        let mut line = &input[..newline];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        self.is_inline = true;
        self.done = true;
        split_args(line, &mut self.inline, &mut self.args)?;
        Ok(if self.args.is_empty() {
            Parsed::Empty(newline + 1)
        } else {
            Parsed::Command(newline + 1)
        })
    }
}

/// Index of the first `\r` in `input` at or after `from`.
fn find_cr(input: &[u8], from: usize) -> Option<usize> {
    input[from..]
        .iter()
        .position(|&b| b == b'\r')
        .map(|i| i + from)
}

/// Redis's `string2ll`: an optional `-`, then digits with no leading zero
/// (a lone `0` excepted); no `+`, no spaces, no overflow.
pub fn parse_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Splits an inline line into arguments, unquoting into `out` and recording
/// `(start, len)` pairs in `args`. Double quotes know `\n \r \t \b \a \\ \"`
/// and `\xHH`; single quotes know `\'`.
///
/// Separators are spaces and tabs only, as redis-server 7 splits: a form
/// feed, vertical tab or lone CR is part of an argument. A closing quote
/// must be followed by the end of the line or by any C `isspace` byte,
/// which the quote takes with it (so `"a"\fb` is `a` then `b`).
fn split_args(
    line: &[u8],
    out: &mut Vec<u8>,
    args: &mut Vec<(usize, usize)>,
) -> Result<(), ProtocolError> {
    let mut i = 0;
    loop {
        while i < line.len() && is_separator(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        match line[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let rest = &line[i..];
                    if let Some((byte, taken)) = escape(quote, rest) {
                        out.push(byte);
                        i += taken;
                        continue;
                    }
                    match rest {
                        [] => return Err(ProtocolError::UnbalancedQuotes),
                        [c, after @ ..] if *c == quote => {
                            match after.first() {
                                None => i += 1,
                                Some(&b) if is_c_space(b) => i += 2,
                                Some(_) => return Err(ProtocolError::UnbalancedQuotes),
                            }
                            break;
                        }
                        [c, ..] => {
                            out.push(*c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < line.len() && !is_separator(line[i]) {
                    out.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push((start, out.len() - start));
    }
}

/// The byte an escape at the start of `rest` stands for inside `quote`s,
/// and how many bytes the escape takes; `None` where `rest` does not start
/// with one. In double quotes a backslash before any other byte (`\\`,
/// `\"`) stands for that byte, and `\x` without two hex digits for `x`.
fn escape(quote: u8, rest: &[u8]) -> Option<(u8, usize)> {
    match (quote, rest) {
        (b'"', [b'\\', b'x', h, l, ..]) if hex(*h).is_some() && hex(*l).is_some() => {
            Some((hex(*h).unwrap_or(0) * 16 + hex(*l).unwrap_or(0), 4))
        }
        (b'"', [b'\\', c, ..]) => {
            let byte = match c {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 8,
                b'a' => 7,
                other => *other,
            };
            Some((byte, 2))
        }
        (b'\'', [b'\\', b'\'', ..]) => Some((b'\'', 2)),
        _ => None,
    }
}

/// What separates inline arguments.
fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// C's `isspace`: what may follow a closing quote.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
