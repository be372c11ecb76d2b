//! The `resp_server` example's incremental parser on its own, without a
//! socket: commands survive any split of their bytes, declared lengths
//! allocate nothing and out-of-range ones are errors, endless lines are
//! refused at the cap, garbage (generated, and structured from RESP
//! fragments) never panics, `finish` releases a huge command's table, and
//! inline arguments split where redis-server splits them.
//! The module is the example's own file, included here by path.
mod common;

#[allow(dead_code)]
#[path = "../examples/resp_server/parse.rs"]
mod parse;

use common::resp::encode;
use common::XorShift;
use parse::{Parsed, Parser, ProtocolError, ARGV_PREALLOC, MAX_INLINE};
use proptest::prelude::*;

/// Feeds `input` to a fresh parser in chunks the way the reactor does:
/// each call sees everything not yet consumed; returns the commands'
/// arguments, or the error.
fn feed(input: &[u8], chunks: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut parser = Parser::default();
    let mut commands = Vec::new();
    let (mut consumed, mut available) = (0, 0);
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(input.len()));
    while available < input.len() {
        available = (available + sizes.next().unwrap().max(1)).min(input.len());
        loop {
            let offered = &input[consumed..available];
            match parser.parse(offered)? {
                Parsed::Incomplete => break,
                Parsed::Empty(n) => consumed += n,
                Parsed::Command(n) => {
                    assert!(n <= offered.len());
                    commands.push(
                        (0..parser.argc())
                            .map(|i| parser.arg(offered, i).to_vec())
                            .collect(),
                    );
                    consumed += n;
                }
            }
            assert!(parser.args_capacity() <= ARGV_PREALLOC.max(offered.len()));
        }
    }
    Ok(commands)
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..1024), chunks in proptest::collection::vec(1usize..128, 0..8)) {
        let _ = feed(&input, &chunks);
    }

    #[test]
    fn starred_garbage_never_panics(body in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'*'), Just(b'-'), b'0'..=b'9', any::<u8>()], 0..200)) {
        let mut input = b"*".to_vec();
        input.extend(body);
        let _ = feed(&input, &[7]);
    }

    #[test]
    fn commands_survive_any_split(commands in proptest::collection::vec(command(), 1..8), chunks in proptest::collection::vec(1usize..64, 0..64)) {
        let input: Vec<u8> = commands.iter().flat_map(|c| encode(c)).collect();
        prop_assert_eq!(feed(&input, &chunks), Ok(commands.clone()));
        // Every strict prefix of one command is incomplete.
        let one = encode(&commands[0]);
        for cut in 0..one.len() {
            let mut parser = Parser::default();
            prop_assert_eq!(parser.parse(&one[..cut]), Ok(Parsed::Incomplete));
        }
    }

    #[test]
    fn huge_declared_lengths_allocate_nothing(count in 1i64..=i64::from(i32::MAX), len in 0usize..=parse::MAX_BULK, sent in 0usize..2048) {
        let mut input = format!("*{count}\r\n${len}\r\n").into_bytes();
        input.extend(std::iter::repeat_n(b'x', sent.min(len)));
        let mut parser = Parser::default();
        prop_assert_eq!(parser.parse(&input), Ok(Parsed::Incomplete));
        prop_assert!(parser.args_capacity() <= ARGV_PREALLOC);
    }

    #[test]
    fn declared_lengths_out_of_range_are_errors(n in prop_oneof![i64::MIN..-1, (parse::MAX_BULK as i64 + 1)..i64::MAX]) {
        let input = format!("*1\r\n${n}\r\n");
        prop_assert_eq!(Parser::default().parse(input.as_bytes()), Err(ProtocolError::InvalidBulkLength));
        let input = format!("*{}\r\n", i128::from(i32::MAX) + 1 + i128::from(n.unsigned_abs() % 1000));
        prop_assert_eq!(Parser::default().parse(input.as_bytes()), Err(ProtocolError::InvalidMultibulkLength));
    }

    #[test]
    fn endless_lines_are_errors_not_memory(byte in 0x21u8..0x7f, extra in 1usize..1000) {
        prop_assume!(byte != b'*');
        let line = vec![byte; MAX_INLINE + extra];
        prop_assert_eq!(Parser::default().parse(&line), Err(ProtocolError::TooBigInline));
        prop_assert_eq!(Parser::default().parse(&line[..MAX_INLINE]), Ok(Parsed::Incomplete));
    }
}

#[test]
fn structured_garbage_from_resp_fragments_never_panics() {
    const FRAGMENTS: [&[u8]; 16] = [
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"-1",
        b"0",
        b"3",
        b"500000000",
        b"2147483648",
        b"PING",
        b" ",
        b"\"",
        b"'",
        b"\\x4",
        b"99999999999999999999",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let input = rng.garbage(&FRAGMENTS, 40);
        let chunks: Vec<usize> = (0..rng.below(6)).map(|_| 1 + rng.below(16)).collect();
        let _ = feed(&input, &chunks);
    }
}

#[test]
fn finish_releases_a_huge_commands_argument_table() {
    let count = 4 * ARGV_PREALLOC;
    let mut input = format!("*{count}\r\n").into_bytes();
    for _ in 0..count {
        input.extend_from_slice(b"$1\r\nx\r\n");
    }
    let mut parser = Parser::default();
    assert_eq!(parser.parse(&input), Ok(Parsed::Command(input.len())));
    assert!(parser.args_capacity() >= count);
    parser.finish();
    assert!(parser.args_capacity() <= ARGV_PREALLOC);
    // A command still being received is left alone.
    assert_eq!(parser.parse(b"*2\r\n$3\r\nGET\r\n"), Ok(Parsed::Incomplete));
    parser.finish();
    assert_eq!(
        parser.parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        Ok(Parsed::Command(20))
    );
}

/// Inline arguments are split on spaces and tabs only, as redis-server 7
/// splits them: form feed, vertical tab and a lone CR belong to the
/// argument; a closing quote takes one C `isspace` byte after it (checked
/// against redis-server 7.0.15 by tests/resp3.rs).
#[test]
fn inline_arguments_split_on_spaces_and_tabs_only() {
    let cases: [(&[u8], &[&[u8]]); 6] = [
        (b"SET\ta  \t b\r\n", &[b"SET", b"a", b"b"]),
        (b"SET a\x0cb c\r\n", &[b"SET", b"a\x0cb", b"c"]),
        (b"SET\x0b a\r\n", &[b"SET\x0b", b"a"]),
        (b"SET a\rb\r\n", &[b"SET", b"a\rb"]),
        (b"SET \"a\"\x0cb\r\n", &[b"SET", b"a", b"b"]),
        (b"GET k\x0c\n", &[b"GET", b"k\x0c"]),
    ];
    for (line, want) in cases {
        let got = feed(line, &[]).unwrap();
        assert_eq!(
            got,
            [want.iter().map(|a| a.to_vec()).collect::<Vec<_>>()],
            "{line:?}"
        );
    }
    assert_eq!(
        feed(b"SET \"a\"x\r\n", &[]),
        Err(ProtocolError::UnbalancedQuotes)
    );
}
