//! The `http_server` example's parsers on their own, without a socket: the
//! head parser and the chunked-body decoder on generated and hostile input
//! (proptest, and structured garbage from HTTP fragments), their framing
//! decisions (`Transfer-Encoding`, `Expect`, targets, versions, chunk
//! lines) case by case, and the `Date` formatter on known instants. The modules are the example's own files,
//! included here by path.

mod common;

#[path = "../examples/http_server/chunked.rs"]
mod chunked;
#[path = "../examples/http_server/date.rs"]
mod date;
#[allow(dead_code)]
#[path = "../examples/http_server/parse.rs"]
mod parse;

use chunked::{ChunkError, Chunked, MAX_CHUNK_LINE, MAX_SIZE_DIGITS};
use common::XorShift;
use parse::{parse_head, HeadError, MAX_HEAD};
use proptest::prelude::*;

#[test]
fn http_date_matches_known_instants() {
    let as_str = |secs| String::from_utf8(date::http_date(secs).to_vec()).unwrap();
    assert_eq!(as_str(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(as_str(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(as_str(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(as_str(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
    assert_eq!(as_str(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
}

#[test]
fn head_parser_reads_fields() {
    let input: &[u8] =
        b"\r\nPOST /x?y HTTP/1.0\r\nHost: h\r\nconnection:  Keep-Alive \r\nContent-Length: 12\r\n\r\nrest";
    let head = parse_head(input).unwrap().unwrap();
    assert_eq!(head.method, b"POST");
    assert_eq!(head.target, b"/x?y");
    assert_eq!(head.minor, 0);
    assert!(head.keep_alive);
    assert_eq!(head.content_length, 12);
    assert_eq!(head.len, input.len() - b"rest".len());
    // Bare LF line ends are accepted.
    let head = parse_head(b"GET / HTTP/1.1\nHost: h\n\n").unwrap().unwrap();
    assert!(head.keep_alive);
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n"), Ok(None));
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n"),
        Err(HeadError::Malformed("obsolete line folding"))
    );
}

/// A valid request head with random target, header names and values.
fn valid_head() -> impl Strategy<Value = (Vec<u8>, u64)> {
    (
        "/[a-z0-9/]{0,20}",
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}"), 0..8),
        0u64..2_000_000,
    )
        .prop_map(|(target, headers, length)| {
            let mut head = format!("GET {target} HTTP/1.1\r\nHost: h\r\n");
            for (name, value) in headers {
                let lower = name.to_ascii_lowercase();
                if ["host", "content-length", "transfer-encoding"].contains(&lower.as_str()) {
                    continue;
                }
                head.push_str(&format!("X-{name}: {value}\r\n"));
            }
            head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
            (head.into_bytes(), length)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics_and_stays_in_bounds(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        match parse_head(&input) {
            Ok(Some(head)) => {
                prop_assert!(head.len <= input.len() && head.len <= MAX_HEAD);
                prop_assert!(head.minor <= 1);
            }
            Ok(None) => prop_assert!(input.len() < MAX_HEAD),
            Err(_) => {}
        }
    }

    #[test]
    fn valid_heads_parse_and_every_prefix_is_incomplete((head, length) in valid_head(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut input = head.clone();
        input.extend_from_slice(&tail);
        let parsed = parse_head(&input).unwrap().unwrap();
        prop_assert_eq!(parsed.len, head.len());
        prop_assert_eq!(parsed.content_length, length);
        prop_assert!(parsed.keep_alive);
        for cut in 0..head.len() {
            prop_assert_eq!(parse_head(&head[..cut]), Ok(None));
        }
    }

    #[test]
    fn endless_lines_are_refused_at_the_cap(byte in 0x20u8..0x7f, extra in 0usize..4096) {
        let line = vec![byte; MAX_HEAD + extra];
        if byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte) {
            // Could still become a method: waited for up to the cap.
            prop_assert_eq!(parse_head(&line), Err(HeadError::TooLarge));
            prop_assert_eq!(parse_head(&line[..MAX_HEAD - 1]), Ok(None));
        } else {
            // Cannot start a request line: refused at its first byte.
            prop_assert!(matches!(parse_head(&line[..1]), Err(HeadError::Malformed(_))));
        }
    }

    #[test]
    fn huge_declared_lengths_are_just_numbers(digits in "[0-9]{1,40}") {
        let input = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {digits}\r\n\r\n");
        match parse_head(input.as_bytes()) {
            Ok(Some(head)) => prop_assert_eq!(head.content_length.to_string().parse::<u128>().unwrap(), digits.parse::<u128>().unwrap()),
            Err(HeadError::Malformed(_)) => prop_assert!(digits.parse::<u64>().is_err()),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

#[test]
fn structured_garbage_from_http_fragments_never_panics() {
    const FRAGMENTS: [&[u8]; 18] = [
        b"GET",
        b"POST",
        b" ",
        b"/",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/9.9",
        b"\r\n",
        b"\n",
        b"\r",
        b"Host: h",
        b"Content-Length: ",
        b"99999999999999999999999",
        b"12",
        b"Transfer-Encoding: chunked",
        b"Connection: close",
        b":",
        b"\t",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..5000 {
        let input = rng.garbage(&FRAGMENTS, 30);
        match parse_head(&input) {
            Ok(Some(head)) => assert!(head.len <= input.len()),
            Ok(None) => assert!(input.len() < MAX_HEAD),
            Err(_) => {}
        }
    }
}

/// Chunked encoding of `pieces`, with a trailer when `trailer` is set.
fn encode_chunked(pieces: &[Vec<u8>], trailer: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"X-Sum: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Feeds `input` to a decoder the way the server does: each call sees what
/// earlier calls left plus the next `step` bytes. Returns (bytes consumed,
/// ended) or the error; checks nothing unconsumed grows past a line.
fn feed_chunked(input: &[u8], step: usize, limit: u64) -> Result<(usize, bool), ChunkError> {
    decode_chunked(input, step, limit).map(|(consumed, done, _)| (consumed, done))
}

/// [`feed_chunked`], also returning the data the decoder handed on.
fn decode_chunked(
    input: &[u8],
    step: usize,
    limit: u64,
) -> Result<(usize, bool, Vec<u8>), ChunkError> {
    let mut decoder = Chunked::default();
    let mut data = Vec::new();
    let (mut consumed, mut available) = (0, 0);
    while available < input.len() {
        available = (available + step.max(1)).min(input.len());
        let (used, done) = decoder.feed(&input[consumed..available], limit, &mut |piece| {
            data.extend_from_slice(piece)
        })?;
        consumed += used;
        assert!(consumed <= available);
        if done {
            return Ok((consumed, true, data));
        }
        assert!(available - consumed <= MAX_CHUNK_LINE + 2, "holds too much");
    }
    Ok((consumed, false, data))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn chunked_bodies_end_exactly_at_their_end(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
        trailer in any::<bool>(),
        step in 1usize..200,
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let body = encode_chunked(&pieces, trailer);
        let mut input = body.clone();
        input.extend_from_slice(&tail);
        let (consumed, done, data) = decode_chunked(&input, step, 1 << 20).unwrap();
        prop_assert_eq!((consumed, done), (body.len(), true));
        prop_assert_eq!(data, pieces.concat());
        let total: usize = pieces.iter().map(Vec::len).sum();
        if total > 0 {
            prop_assert_eq!(feed_chunked(&input, step, total as u64 - 1), Err(ChunkError::TooLarge));
        }
    }

    #[test]
    fn chunked_garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600), step in 1usize..64) {
        let _ = feed_chunked(&input, step, 1 << 20);
    }

    #[test]
    fn huge_chunk_sizes_are_just_numbers(zeros in 0usize..40, digits in "[0-9a-fA-F]{1,30}") {
        let input = format!("{}{digits}\r\n", "0".repeat(zeros));
        let significant = digits.trim_start_matches('0').len();
        let mut decoder = Chunked::default();
        match decoder.feed(input.as_bytes(), u64::MAX, &mut |_| {}) {
            Ok((used, _)) => {
                prop_assert_eq!(used, input.len());
                prop_assert!(significant <= MAX_SIZE_DIGITS);
            }
            Err(ChunkError::Malformed(_)) => prop_assert!(significant > MAX_SIZE_DIGITS),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

#[test]
fn endless_chunk_lines_are_refused() {
    let line = vec![b'1'; MAX_CHUNK_LINE + 10];
    assert!(matches!(
        Chunked::default().feed(&line, u64::MAX, &mut |_| {}),
        Err(ChunkError::Malformed(_))
    ));
}

/// The head of `POST / HTTP/1.1` with `Host` and `headers` (each ending
/// in CRLF), leaked so the head may borrow it (a few bytes per test).
fn head_with(headers: &str) -> Result<Option<parse::Head<'static>>, HeadError> {
    let input: &'static str =
        Box::leak(format!("POST / HTTP/1.1\r\nHost: h\r\n{headers}\r\n").into_boxed_str());
    parse_head(input.as_bytes())
}

#[test]
fn transfer_encoding_decides_the_framing_or_refuses_it() {
    use parse::TransferCoding::{Chunked as IsChunked, Other};
    let coding = |headers: &str| head_with(headers).map(|h| h.unwrap().transfer_coding);
    assert_eq!(coding("Transfer-Encoding: chunked\r\n"), Ok(IsChunked));
    assert_eq!(coding("Transfer-Encoding: CHUNKED\r\n"), Ok(IsChunked));
    assert_eq!(coding("Transfer-Encoding: , chunked ,\r\n"), Ok(IsChunked));
    assert_eq!(coding("Transfer-Encoding: gzip, chunked\r\n"), Ok(Other));
    assert_eq!(
        coding("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
        Ok(Other)
    );
    for refused in [
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked;x=1\r\n",
        "Transfer-Encoding: \r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
    ] {
        assert!(
            matches!(coding(refused), Err(HeadError::Malformed(_))),
            "{refused}"
        );
    }
    // No transfer codings in HTTP/1.0 at all.
    assert_eq!(
        parse_head(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0"))
    );
}

#[test]
fn expectations_are_read_and_ignored_in_1_0() {
    use parse::Expect;
    let expect = |headers: &str| head_with(headers).unwrap().unwrap().expect;
    assert_eq!(expect(""), Expect::None);
    assert_eq!(expect("Expect: 100-Continue\r\n"), Expect::Continue);
    assert_eq!(expect("Expect: 100-continue, x\r\n"), Expect::Other);
    assert_eq!(
        expect("Expect: 100-continue\r\nExpect: x\r\n"),
        Expect::Other
    );
    let head = parse_head(b"POST / HTTP/1.0\r\nExpect: x\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.expect, Expect::None);
}

#[test]
fn targets_route_on_their_path_and_later_minors_are_1_1() {
    let path = |target: &str| {
        let input = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        parse_head(input.as_bytes()).map(|h| h.unwrap().path.to_vec())
    };
    assert_eq!(path("/a/b?c"), Ok(b"/a/b".to_vec()));
    assert_eq!(path("http://h/echo?x"), Ok(b"/echo".to_vec()));
    assert_eq!(path("HTTP://h:8080"), Ok(b"/".to_vec()));
    assert_eq!(path("https://u@h?q"), Ok(b"/".to_vec()));
    assert_eq!(path("*"), Ok(b"*".to_vec()));
    assert!(matches!(path("http:///x"), Err(HeadError::Malformed(_))));
    assert!(matches!(path("1http://h/"), Err(HeadError::Malformed(_))));
    let minor = |version: &str| {
        let input = format!("GET / {version}\r\nHost: h\r\n\r\n");
        parse_head(input.as_bytes()).map(|h| h.unwrap().minor)
    };
    assert_eq!(minor("HTTP/1.0"), Ok(0));
    assert_eq!(minor("HTTP/1.1"), Ok(1));
    assert_eq!(minor("HTTP/1.2"), Ok(1));
    assert_eq!(minor("HTTP/1.9"), Ok(1));
    assert_eq!(minor("HTTP/2.0"), Err(HeadError::Version));
    assert_eq!(minor("HTTP/0.9"), Err(HeadError::Version));
    assert!(matches!(minor("HTTP/1.10"), Err(HeadError::Malformed(_))));
    assert!(matches!(minor("http/1.1"), Err(HeadError::Malformed(_))));
}

#[test]
fn chunk_lines_refuse_control_characters_and_take_leading_zeros() {
    let decode = |body: &[u8]| decode_chunked(body, body.len(), 1 << 20);
    let body = b"000a\r\n0123456789\r\n00000\r\n\r\n";
    assert_eq!(decode(body), Ok((body.len(), true, b"0123456789".to_vec())));
    for bad in [
        &b"1;a=b\rc\r\nx\r\n0\r\n\r\n"[..],
        b"1;a\x01\r\nx\r\n",
        b"0\r\nX: a\rb\r\n\r\n",
    ] {
        assert!(
            matches!(decode(bad), Err(ChunkError::Malformed(_))),
            "{bad:?}"
        );
    }
}
