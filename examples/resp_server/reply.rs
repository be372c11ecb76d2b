//! Reply encoders for the `resp_server` example, RESP2 and RESP3, and the
//! error texts that more than one command sends.
//!
//! The types whose encoding differs between the protocols (null, map, push)
//! take the connection's choice (`resp3`, set by HELLO); the RESP2 form of
//! a map is a flat array of its keys and values, of a push an array, as
//! Redis sends them.
//!
//! They append to a `Vec` rather than return one, so that every reply of a
//! pipeline lands in one buffer that leaves in one write. Lengths and
//! integers go through `push_decimal` rather than `write!`, since nearly
//! every reply carries one. Texts follow Redis 7 to the byte: clients and
//! tests compare them.

use crate::decimal::push_decimal;

/// The error for an argument that should be a decimal `i64` and is not.
pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// `+<text>`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Text for a person to read (INFO, CLIENT LIST): a verbatim string of
/// format `txt` in RESP3, a bulk string in RESP2, as Redis sends it.
pub fn verbatim(out: &mut Vec<u8>, text: &[u8], resp3: bool) {
    if resp3 {
        out.push(b'=');
        push_decimal(out, text.len() as u64 + 4);
        out.extend_from_slice(b"\r\ntxt:");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text);
    }
}

/// `-<text>`; CR and LF become spaces so the reply stays one line.
pub fn error(out: &mut Vec<u8>, text: &str) {
    error_bytes(out, text.as_bytes());
}

/// [`error`] for a text that holds the client's bytes, which need not be
/// UTF-8: Redis echoes them as they are.
pub fn error_bytes(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// A bulk string, copied.
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    bulk_header(out, bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// `$<len>`: what precedes a bulk string's bytes. A large one is sent from
/// where it is, after this header, rather than copied in with [`bulk`].
pub fn bulk_header(out: &mut Vec<u8>, len: usize) {
    length_line(out, b'$', len);
}

/// Null, Redis's "no such key": RESP3's `_`, RESP2's null bulk string.
pub fn null(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// A map of `len` pairs, each a key reply then a value reply (RESP2: an
/// array of twice as many elements).
pub fn map(out: &mut Vec<u8>, len: usize, resp3: bool) {
    match resp3 {
        true => length_line(out, b'%', len),
        false => length_line(out, b'*', len * 2),
    }
}

/// An out-of-band push of `len` elements (pub/sub; RESP2: an array).
pub fn push(out: &mut Vec<u8>, len: usize, resp3: bool) {
    length_line(out, if resp3 { b'>' } else { b'*' }, len);
}

/// `:<n>`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    if n < 0 {
        out.push(b'-');
    }
    push_decimal(out, n.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

/// `*<len>`: the elements follow as replies of their own.
pub fn array(out: &mut Vec<u8>, len: usize) {
    length_line(out, b'*', len);
}

/// A type byte, a length and the line end.
fn length_line(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    push_decimal(out, len as u64);
    out.extend_from_slice(b"\r\n");
}

/// Redis's error for a command (or `command|subcommand`) given the wrong
/// number of arguments.
pub fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

/// Redis's error for a subcommand `command` (upper case, as Redis shows
/// it) does not have.
pub fn unknown_subcommand(out: &mut Vec<u8>, command: &str, sub: &[u8]) {
    error(
        out,
        &format!(
            "ERR unknown subcommand '{}'. Try {command} HELP.",
            String::from_utf8_lossy(sub)
        ),
    );
}

/// Redis's reply to an unknown command: the name and the start of the
/// arguments, quoted, byte for byte. Redis formats them with C's `%.*s`, so
/// each stops at a NUL byte and at 128 bytes, and arguments are added while
/// the list is under 128 bytes.
pub fn unknown_command<'x>(out: &mut Vec<u8>, name: &[u8], args: impl Iterator<Item = &'x [u8]>) {
    let mut shown = Vec::new();
    for arg in args {
        if shown.len() >= 128 {
            break;
        }
        shown.push(b'\'');
        let room = 128 - (shown.len() - 1);
        shown.extend_from_slice(c_string(arg, room));
        shown.extend_from_slice(b"' ");
    }
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(c_string(name, 128));
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&shown);
    error_bytes(out, &text);
}

/// What C's `%.*s` prints of `bytes`: up to the first NUL, at most `max`.
pub fn c_string(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}
