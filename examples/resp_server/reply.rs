//! RESP2 reply encoders for the `resp_server` example, and the error texts
//! that more than one command sends.
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

/// `-<text>`; CR and LF become spaces so the reply stays one line.
pub fn error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
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

/// The null bulk string, Redis's "no such key".
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
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
/// arguments, each cut to fit 128 bytes.
pub fn unknown_command(out: &mut Vec<u8>, name: &[u8], args: impl Iterator<Item = Vec<u8>>) {
    let mut shown = String::new();
    for arg in args {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let arg = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        shown.push_str(&format!("'{arg}' "));
    }
    let name = String::from_utf8_lossy(&name[..name.len().min(128)]).into_owned();
    error(
        out,
        &format!("ERR unknown command '{name}', with args beginning with: {shown}"),
    );
}
