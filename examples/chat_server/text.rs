//! What text the chat room lets through: which characters are made harmless
//! in a relayed line, which a nickname may not contain, and the key under
//! which two nicknames count as the same.
//!
//! Apart from `commands.rs`, which decides what a line means, because this
//! is the one policy both a line and a nickname follow, with the Unicode
//! data it needs: std knows control characters (`char::is_control`, general
//! category Cc) but not format characters (Cf), so their ranges are written
//! out below from the Unicode Character Database.
//!
//! The policy: a character that moves or hides text instead of showing it
//! is never relayed and never part of a name. That is the C0 and C1
//! controls and DEL (Cc: escape sequences, carriage returns rewriting the
//! line) and the format characters (Cf: zero-width spaces and joiners, bidi
//! embeddings, overrides and isolates that reorder what follows, the byte
//! order mark, the soft hyphen, tags). In a relayed line each becomes `?`,
//! as C0 bytes always have; a nickname that contains one is refused, so
//! that `bob` with a zero-width space in it cannot pass for `bob`.

/// The general category Cf (format characters), from
/// `extracted/DerivedGeneralCategory.txt` of Unicode 15.1.0
/// (<https://www.unicode.org/Public/15.1.0/ucd/extracted/DerivedGeneralCategory.txt>),
/// inclusive ranges in code point order. The tag block is taken whole
/// (U+E0000..U+E007F; U+E0000 and U+E0002..U+E001F are unassigned), so that
/// a tag assigned later is filtered too. A later Unicode version may add
/// ranges; the ones that let a name pass for another (zero width, bidi,
/// U+FEFF, U+00AD) have been format characters since Unicode 6.3 or
/// earlier.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark (bidi)
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero width space..right-to-left mark
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{2064}'),   // word joiner..invisible plus
    ('\u{2066}', '\u{206F}'),   // bidi isolates, deprecated format chars
    ('\u{FEFF}', '\u{FEFF}'),   // zero width no-break space (BOM)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol beam and phrase controls
    ('\u{E0000}', '\u{E007F}'), // tags
];

/// Characters that are not format characters but are still invisible by
/// default, refused in nicknames only: from the Default_Ignorable_Code_Point
/// property in `DerivedCoreProperties.txt` of Unicode 15.1.0
/// (<https://www.unicode.org/Public/15.1.0/ucd/DerivedCoreProperties.txt>),
/// less the ranges `FORMAT` already has. A relayed line keeps them: variation
/// selectors pick an emoji's presentation, and the rest are letters or marks
/// of real scripts.
const INVISIBLE: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{115F}', '\u{1160}'),   // Hangul choseong and jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180D}'),   // Mongolian free variation selectors
    ('\u{180F}', '\u{180F}'),   // Mongolian free variation selector four
    ('\u{2065}', '\u{2065}'),   // unassigned, reserved as ignorable
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFF8}'),   // unassigned, reserved as ignorable
    ('\u{E0080}', '\u{E0FFF}'), // variation selectors supplement, reserved
];

/// Whether `c` is in one of the sorted, disjoint `ranges`.
fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` moves or hides text rather than showing it: a control
/// character (C0, DEL, C1) or a format character.
pub(crate) fn is_hidden(c: char) -> bool {
    c.is_control() || (c >= '\u{00AD}' && in_ranges(FORMAT, c))
}

/// Whether a nickname may not contain `c`: what a line may not carry, and
/// the other default-ignorable characters, which also show nothing.
pub(crate) fn is_refused_in_nick(c: char) -> bool {
    is_hidden(c) || (c >= '\u{034F}' && in_ranges(INVISIBLE, c))
}

/// Appends `text` to `out` with every hidden character (`is_hidden`)
/// replaced by `?`. Bytes that are not UTF-8 are copied as they are, as
/// they always were: the room relays bytes, and a client shows them as it
/// can. (A lone byte 0x80..0x9F is not a C1 control to a terminal reading
/// UTF-8; only the two-byte encodings of U+0080..U+009F are, and those are
/// replaced.)
pub(crate) fn push_sanitised(out: &mut Vec<u8>, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_hidden(c) {
                out.push(b'?');
            } else {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
}

/// The key under which nicknames are unique: two names with the same key
/// cannot both be in the room.
///
/// Caught: names that differ only in case (`Bob`, `bob`, `BOB`; by
/// `str::to_lowercase`, so also the Kelvin sign `K` against `k`), and
/// fullwidth forms of ASCII (`Ｂｏｂ` against `bob`: U+FF01..U+FF5E, whose
/// compatibility decomposition in `UnicodeData.txt` is the ASCII character
/// 0xFEE0 below). Invisible characters never get this far: names with them
/// are refused (`is_refused_in_nick`).
///
/// Not caught: other compatibility lookalikes that NFKC would fold (`ﬁ`
/// against `fi`, mathematical letters, circled letters: std has no
/// normalisation tables, and this example adds no crates), and confusables
/// across scripts (Cyrillic `а` against Latin `a`, `0` against `O`).
/// Detecting those is the skeleton comparison of UTS #39 (Unicode Security
/// Mechanisms) with its `confusables.txt` data, which is out of scope here.
pub(crate) fn nick_key(nick: &str) -> String {
    let folded: String = nick
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    folded.to_lowercase()
}
