//! HTTP/1.x request heads for the `http_server` example, parsed, with the
//! framing rules that keep a request from being read two ways (RFC 9112
//! §6). Chunked request bodies are in `chunked.rs`, the `Date` value in
//! `date.rs`.
//!
//! This file is a module of the example (`examples/http_server.rs`) and is
//! also included by `tests/http_parse.rs` (and by `tests/http_limits.rs`
//! for [`MAX_HEAD`]), so the parser can be fuzzed on its own without a
//! socket. It lives in a directory without `main.rs`, so cargo does not
//! mistake it for an example of its own.
//!
//! The parser reads straight from the connection's input slice: the result
//! borrows method and target from it and nothing is allocated or copied, so a
//! plain keep-alive `GET` costs no heap work. Only the headers the server acts
//! on (`Connection`, `Content-Length`, `Transfer-Encoding`, `Host`) are
//! interpreted; the rest are validated and skipped. Parsing is stateless:
//! an incomplete head is parsed again from its start when more bytes arrive,
//! which the 8 KiB head cap keeps cheap. Chunked bodies, which can be long,
//! are instead walked incrementally by `chunked::Chunked`, which skips their
//! data without copying it.

/// Largest request head accepted (request line, headers and the blank line).
/// Larger heads are answered with `431`, like nginx's default buffers.
pub const MAX_HEAD: usize = 8 * 1024;

/// A complete, valid request head, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// Request method, a non-empty token (case-sensitive, as RFC 9110 says).
    pub method: &'a [u8],
    /// Request target as sent: non-empty visible ASCII.
    pub target: &'a [u8],
    /// The target's path, what the server routes on: the origin-form
    /// target up to any `?`, or the path of an absolute-form one
    /// (`http://host/p?q` -> `/p`; `/` when it has none), whose authority
    /// then stands in for `Host` (RFC 9112 §3.2.2).
    pub path: &'a [u8],
    /// Minor version of `HTTP/1.x`: 0 or 1. A minor above 1 is read as 1:
    /// a 1.x server answers any later 1.x as the highest it speaks (RFC
    /// 9110 §2.5).
    pub minor: u8,
    /// Whether the connection stays open after this request, from the
    /// version and the `Connection` header.
    pub keep_alive: bool,
    /// Declared body length; 0 when there is no `Content-Length`.
    pub content_length: u64,
    /// What `Transfer-Encoding` said. Never other than `None` together with
    /// a `Content-Length` or in HTTP/1.0: both are refused as malformed.
    pub transfer_coding: TransferCoding,
    /// What `Expect` asked for (always `None` in HTTP/1.0, which must
    /// ignore it: RFC 9110 §10.1.1).
    pub expect: Expect,
    /// The last `Content-Type` value, trimmed, if any: `/echo` answers
    /// with it.
    pub content_type: Option<&'a [u8]>,
    /// Bytes the head occupies in the input, blank line included.
    /// Invariant: `0 < len <= MAX_HEAD`.
    pub len: usize,
}

/// The request's `Transfer-Encoding`, as far as this server can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferCoding {
    /// No `Transfer-Encoding` header: the body, if any, has a
    /// `Content-Length`.
    None,
    /// `chunked` alone (in any case, in one header or list): the body is
    /// read with `chunked::Chunked`.
    Chunked,
    /// `chunked` last, after codings this server does not decode (`gzip,
    /// chunked`): the framing is known but the content is not (the caller
    /// answers 501, RFC 9112 §6.1). A list whose last coding is not
    /// `chunked` never gets here: its length cannot be known, so it is
    /// refused as malformed (400, RFC 9112 §6.3).
    Other,
}

/// The request's `Expect` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// None (or HTTP/1.0, which ignores it).
    None,
    /// `100-continue`: the client waits for `100 Continue` before its body.
    Continue,
    /// Anything else: the caller answers 417.
    Other,
}

/// Why a head was refused; each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Syntax or semantics violate RFC 9112: `400 Bad Request`. The text says
    /// what was wrong, for the log.
    Malformed(&'static str),
    /// The head is longer than [`MAX_HEAD`]: `431`.
    TooLarge,
    /// A well-formed version other than 1.0 or 1.1: `505`.
    Version,
}

/// Parses one request head from the start of `input`.
///
/// `Ok(None)`: the head is not complete yet (and still fits the cap); call
/// again with more bytes. Leading empty lines are skipped (RFC 9112 §2.2).
/// Lines may end in CRLF or a bare LF; a CR anywhere else is an error.
///
/// One pass: each byte is looked at once, by the scan that both finds where
/// its field ends and checks it may appear there (one table look-up). A
/// complete line that is malformed is refused at once, before the rest of
/// the head arrives, as nginx does.
pub fn parse_head(input: &[u8]) -> Result<Option<Head<'_>>, HeadError> {
    match parse_complete_head(input) {
        Err(Scan::Incomplete) if input.len() >= MAX_HEAD => Err(HeadError::TooLarge),
        Err(Scan::Incomplete) => Ok(None),
        Err(Scan::Refused(e)) => Err(e),
        Ok(head) => Ok(Some(head)),
    }
}

/// Why a scan of the head stopped early.
enum Scan {
    /// The first `MAX_HEAD` bytes (or all of them, if fewer) end inside the
    /// head.
    Incomplete,
    /// The head is refused.
    Refused(HeadError),
}

impl From<HeadError> for Scan {
    fn from(e: HeadError) -> Self {
        Scan::Refused(e)
    }
}

fn parse_complete_head(input: &[u8]) -> Result<Head<'_>, Scan> {
    let mut s = Scanner {
        bytes: &input[..input.len().min(MAX_HEAD)],
        pos: 0,
    };
    while s.take_line_end()? {}
    let method = s.take_until(b' ', TCHAR, "bad method")?;
    if method.is_empty() {
        return Err(HeadError::Malformed("bad method").into());
    }
    let target = s.take_until(b' ', VISIBLE, "bad target")?;
    if target.is_empty() {
        return Err(HeadError::Malformed("bad target").into());
    }
    let path = target_path(target)?;
    let version = s.take_line(VISIBLE, "bad version")?;
    // `HTTP/` DIGIT `.` DIGIT exactly (RFC 9112 §2.3): `HTTP/1.10` is not a
    // version. Any 1.x from 1.1 up is served as 1.1; another major is 505.
    let minor = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0') => 0,
                (b'1', _) => 1,
                _ => return Err(HeadError::Version.into()),
            }
        }
        _ => return Err(HeadError::Malformed("bad version").into()),
    };
    let mut head = Head {
        method,
        target,
        path,
        minor,
        keep_alive: minor == 1,
        content_length: 0,
        transfer_coding: TransferCoding::None,
        expect: Expect::None,
        content_type: None,
        len: 0,
    };
    let (mut close, mut keep_alive_token) = (false, false);
    let mut content_length: Option<u64> = None;
    let mut codings = Codings::default();
    let mut hosts = 0;
    while !s.take_line_end()? {
        if matches!(s.peek(), Some(b' ' | b'\t')) {
            return Err(HeadError::Malformed("obsolete line folding").into());
        }
        let name = s.take_until(b':', TCHAR, "bad header name")?;
        if name.is_empty() {
            return Err(HeadError::Malformed("bad header name").into());
        }
        let value = trim(s.take_line(FIELD_VALUE, "control character in header value")?);
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or(HeadError::Malformed("bad Content-Length"))?;
            if content_length.is_some_and(|old| old != n) {
                return Err(HeadError::Malformed("conflicting Content-Length").into());
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // A second header appends its codings to the first's list.
            codings.add(value)?;
        } else if name.eq_ignore_ascii_case(b"expect") {
            // Two headers add up to a list: any member but 100-continue
            // makes it one this server cannot meet.
            head.expect = match head.expect {
                Expect::None | Expect::Continue if value.eq_ignore_ascii_case(b"100-continue") => {
                    Expect::Continue
                }
                _ => Expect::Other,
            };
        } else if name.eq_ignore_ascii_case(b"content-type") {
            head.content_type = Some(value);
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
    }
    if codings.present {
        // Each refusal below closes the connection: a front end that
        // framed the body differently would otherwise smuggle a request.
        if minor == 0 {
            // HTTP/1.0 has no transfer codings; a 1.0 message with one
            // has faulty framing (RFC 9112 §6.1).
            return Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0").into());
        }
        if content_length.is_some() {
            // The classic request-smuggling ambiguity (RFC 9112 §6.3).
            return Err(HeadError::Malformed("both Transfer-Encoding and Content-Length").into());
        }
        head.transfer_coding = codings.decide()?;
    }
    if minor == 0 {
        head.expect = Expect::None;
    }
    if minor == 1 && hosts != 1 {
        return Err(HeadError::Malformed("HTTP/1.1 needs exactly one Host").into());
    }
    head.content_length = content_length.unwrap_or(0);
    head.keep_alive = !close && (minor == 1 || keep_alive_token);
    head.len = s.pos;
    Ok(head)
}

/// The `Transfer-Encoding` codings of a request, over all its headers.
#[derive(Default)]
struct Codings {
    /// A `Transfer-Encoding` header was seen.
    present: bool,
    /// `chunked` was seen: it must be the last coding.
    chunked: bool,
    /// A coding other than `chunked` was seen.
    other: bool,
}

impl Codings {
    /// Adds one header's list. Empty elements are skipped (RFC 9110 §5.6.1);
    /// a coding after `chunked` (a second `chunked` included, RFC 9112 §7)
    /// is refused. `chunked` with parameters (it defines none) counts as
    /// another coding, as nginx takes it.
    fn add(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.present = true;
        for element in value.split(|&b| b == b',') {
            let name = trim(element);
            if name.is_empty() {
                continue;
            }
            if self.chunked {
                return Err(HeadError::Malformed("chunked is not the final coding"));
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else {
                self.other = true;
            }
        }
        Ok(())
    }

    /// The body's framing: `chunked` last is required, since without it a
    /// request's length cannot be known (400, RFC 9112 §6.3); codings before
    /// it are not decoded here (501).
    fn decide(&self) -> Result<TransferCoding, HeadError> {
        match (self.chunked, self.other) {
            (false, _) => Err(HeadError::Malformed("chunked is not the final coding")),
            (true, true) => Ok(TransferCoding::Other),
            (true, false) => Ok(TransferCoding::Chunked),
        }
    }
}

/// The path a target routes on (see [`Head::path`]). An absolute-form
/// target is `scheme://authority[/path][?query]`, any scheme, as nginx
/// takes it; an empty authority is refused.
fn target_path(target: &[u8]) -> Result<&[u8], HeadError> {
    let until_query =
        |t: &'_ [u8]| -> usize { t.iter().position(|&b| b == b'?').unwrap_or(t.len()) };
    if target.first() == Some(&b'/') {
        return Ok(&target[..until_query(target)]);
    }
    let scheme_len = target
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(target.len());
    let Some(rest) = target[scheme_len..].strip_prefix(b"://") else {
        // `*`, authority-form and the like: routed as sent (to a 404).
        return Ok(&target[..until_query(target)]);
    };
    if scheme_len == 0 || !target[0].is_ascii_alphabetic() {
        return Err(HeadError::Malformed("bad scheme"));
    }
    let authority_len = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    if authority_len == 0 {
        return Err(HeadError::Malformed("absolute-form target without a host"));
    }
    let rest = &rest[authority_len..];
    let path = &rest[..until_query(rest)];
    Ok(if path.first() == Some(&b'/') {
        path
    } else {
        b"/"
    })
}

/// Character classes, as bits of [`CLASS`].
type Class = u8;
/// RFC 9110 `tchar`: method and header-name characters.
const TCHAR: Class = 1;
/// Visible ASCII (0x21..=0x7e): request targets and versions.
const VISIBLE: Class = 2;
/// What a header value may hold: anything but control characters (HTAB
/// excepted) and DEL; bytes from 0x80 are obs-text and allowed.
const FIELD_VALUE: Class = 4;

/// The class bits of every byte value, so a scan checks a byte with one
/// look-up instead of a chain of comparisons.
static CLASS: [Class; 256] = classes();

const fn classes() -> [Class; 256] {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let mut class = 0;
        if byte.is_ascii_alphanumeric() || is_tchar_symbol(byte) {
            class |= TCHAR;
        }
        if byte > 0x20 && byte < 0x7f {
            class |= VISIBLE;
        }
        if (byte >= 0x20 || byte == b'\t') && byte != 0x7f {
            class |= FIELD_VALUE;
        }
        table[b] = class;
        b += 1;
    }
    table
}

const fn is_tchar_symbol(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    )
}

/// A cursor over the (capped) head bytes.
struct Scanner<'a> {
    /// The first `MAX_HEAD` bytes of the input at most.
    bytes: &'a [u8],
    /// Where the next field starts. Invariant: `pos <= bytes.len()`.
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes a line end (CRLF or LF) if one is next: `true` if it was.
    fn take_line_end(&mut self) -> Result<bool, Scan> {
        match &self.bytes[self.pos..] {
            [b'\n', ..] => self.pos += 1,
            [b'\r', b'\n', ..] => self.pos += 2,
            [] | [b'\r'] => return Err(Scan::Incomplete),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The bytes up to `stop`, each of `class`; `stop` is consumed. Any
    /// other byte refuses the head with `why`.
    fn take_until(&mut self, stop: u8, class: Class, why: &'static str) -> Result<&'a [u8], Scan> {
        let start = self.pos;
        for (i, &b) in self.bytes[start..].iter().enumerate() {
            if b == stop {
                self.pos = start + i + 1;
                return Ok(&self.bytes[start..start + i]);
            }
            if CLASS[usize::from(b)] & class == 0 {
                return Err(HeadError::Malformed(why).into());
            }
        }
        Err(Scan::Incomplete)
    }

    /// The rest of the line, each byte of `class`, without its CRLF or LF,
    /// which is consumed. A CR not followed by LF is refused.
    fn take_line(&mut self, class: Class, why: &'static str) -> Result<&'a [u8], Scan> {
        let start = self.pos;
        for (i, &b) in self.bytes[start..].iter().enumerate() {
            if CLASS[usize::from(b)] & class != 0 {
                continue;
            }
            let end = start + i;
            return match (b, self.bytes.get(end + 1)) {
                (b'\n', _) => {
                    self.pos = end + 1;
                    Ok(&self.bytes[start..end])
                }
                (b'\r', Some(b'\n')) => {
                    self.pos = end + 2;
                    Ok(&self.bytes[start..end])
                }
                (b'\r', None) => Err(Scan::Incomplete),
                (b'\r', Some(_)) => Err(HeadError::Malformed("bare CR").into()),
                _ => Err(HeadError::Malformed(why).into()),
            };
        }
        Err(Scan::Incomplete)
    }
}

/// `1*DIGIT` into a `u64`; `None` on anything else or on overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Strips optional whitespace (SP and HTAB) at both ends.
pub(crate) fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}
