//! Characters in the `chat_server` example that show nothing but change
//! what is shown: controls (C0, DEL, C1) and format characters (zero-width
//! spaces and joiners, bidi marks, embeddings, overrides and isolates, the
//! byte order mark, the soft hyphen, tags). A nickname containing one is
//! refused, so that it cannot pass for another member's; in a relayed line
//! each becomes `?`, the way C0 bytes always have. Nicknames are unique
//! regardless of case. Bytes that are not UTF-8 are relayed as they are.
//!
//! Every read has a timeout: a hang is a failure.
mod common;

use std::io::{BufRead, Write};

use common::chat::{start, Client};

/// The error a nickname with a refused character gets.
const REFUSED: &str = "error: a nickname cannot contain ':' or control characters";

/// Two members, `a` already told that `b` joined.
fn pair(server: &common::ChildServer) -> (Client, Client) {
    let mut a = Client::join(server.addr);
    let b = Client::join(server.addr);
    a.expect(&format!("* {} joined", b.name));
    (a, b)
}

#[test]
fn nicknames_with_invisible_characters_are_refused() {
    let server = start();
    let (mut a, mut b) = pair(&server);
    a.send("/nick bob");
    let renamed = format!("* {} is now bob", a.name);
    a.expect(&renamed);
    b.expect(&renamed);
    for nick in [
        "bo\u{200B}b",         // zero width space
        "bob\u{200C}",         // zero width non-joiner
        "b\u{200D}ob",         // zero width joiner
        "\u{2060}bob",         // word joiner
        "\u{FEFF}bob",         // byte order mark
        "bob\u{00AD}",         // soft hyphen
        "\u{200E}bob",         // left-to-right mark
        "bob\u{200F}",         // right-to-left mark
        "\u{061C}bob",         // Arabic letter mark
        "\u{202E}bob",         // right-to-left override
        "b\u{202A}ob",         // left-to-right embedding
        "\u{2066}bob\u{2069}", // isolate
        "bob\u{180E}",         // Mongolian vowel separator
        "bob\u{E0062}",        // tag
        "bob\u{0085}",         // C1: next line
        "bob\u{009B}",         // C1: control sequence introducer
        "bob\u{0080}",         // C1, first
        "bob\u{009F}",         // C1, last
        "bob\u{007F}",         // DEL
        "bob\u{FE0F}",         // variation selector: default ignorable, not Cf
        "\u{3164}",            // Hangul filler: shows as nothing
    ] {
        b.send(&format!("/nick {nick}"));
        b.expect(REFUSED);
    }
    // A C0 control is refused as before.
    b.writer.write_all(b"/nick bob\x1b\n").unwrap();
    b.expect(REFUSED);
    // Nobody heard anything of it, and b kept its name.
    b.send("/who");
    b.expect(&format!("* 2 online: bob, {}", b.name));
    b.send("still me");
    a.expect(&format!("{}: still me", b.name));
}

#[test]
fn nicknames_are_unique_regardless_of_case() {
    let server = start();
    let (mut a, mut b) = pair(&server);
    a.send("/nick Bob");
    let renamed = format!("* {} is now Bob", a.name);
    a.expect(&renamed);
    b.expect(&renamed);
    for nick in ["bob", "BOB", "bOb", "Ｂｏｂ", "ｂｏｂ"] {
        b.send(&format!("/nick {nick}"));
        b.expect(&format!("error: nickname {nick} is taken"));
    }
    // Non-ASCII letters are compared without case too.
    b.send("/nick Émile");
    let renamed = format!("* {} is now Émile", b.name);
    a.expect(&renamed);
    b.expect(&renamed);
    a.send("/nick éMILE");
    a.expect("error: nickname éMILE is taken");
    // A member may change the case of its own name.
    a.send("/nick bob");
    a.expect("* Bob is now bob");
    b.expect("* Bob is now bob");
    a.send("/nick bob");
    a.expect("* you are already bob");
    // A name is free again once its member left.
    a.send("/quit");
    a.expect("* bye");
    b.expect("* bob left");
    b.send("/nick BOB");
    b.expect("* Émile is now BOB");
    // And the old one is free once its member took another.
    let mut c = Client::join(server.addr);
    b.expect(&format!("* {} joined", c.name));
    c.send("/nick émile");
    b.expect(&format!("* {} is now émile", c.name));
    c.expect(&format!("* {} is now émile", c.name));
}

#[test]
fn hidden_characters_in_a_line_are_relayed_as_question_marks() {
    let server = start();
    let (mut a, mut b) = pair(&server);
    for (said, heard) in [
        ("abc\u{202E}fed", "abc?fed"),                // right-to-left override
        ("\u{202D}x\u{202C}y", "?x?y"),               // override, pop
        ("iso\u{2067}late\u{2069}d", "iso?late?d"),   // isolates
        ("mark\u{200F}s\u{200E}", "mark?s?"),         // bidi marks
        ("zero\u{200B}width\u{2060}", "zero?width?"), // zero width
        ("x\u{0085}y\u{009B}31mz\u{0080}", "x?y?31mz?"), // C1 controls
        ("soft\u{00AD}hyphen", "soft?hyphen"),        // soft hyphen
        ("\u{FEFF}bom", "?bom"),                      // byte order mark
        ("tag\u{E0001}\u{E0065}\u{E007F}", "tag???"), // tags
        ("esc \x1b[2J", "esc ?[2J"),                  // C0, as before
    ] {
        a.send(said);
        b.expect(&format!("{}: {heard}", a.name));
    }
    // Visible text outside ASCII passes untouched, emoji with their
    // variation selectors included.
    let shown = "héllo wörld 你好 مرحبا ❤\u{FE0F} 𝄞";
    a.send(shown);
    b.expect(&format!("{}: {shown}", a.name));
    // Bytes that are not UTF-8 are relayed as they are, as before, and the
    // valid text around them is still filtered.
    a.writer
        .write_all(b"raw \xff\x9b\xe2\x80 \xe2\x80\xae!\n")
        .unwrap();
    let mut line = Vec::new();
    b.reader.read_until(b'\n', &mut line).unwrap();
    let mut want = format!("{}: raw ", a.name).into_bytes();
    want.extend_from_slice(b"\xff\x9b\xe2\x80 ?!\n");
    assert_eq!(line, want);
}
