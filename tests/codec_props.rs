//! Properties of `reactor::codec`, checked on random inputs: the decoders are
//! stateless, so the way the reactor happens to split a stream into reads must
//! not change the frames; encoding round-trips; an oversized frame is an error
//! before any memory is set aside for it; garbage never panics.
//!
//! "Not an allocation" is measured, not assumed: this test binary installs a
//! counting global allocator, and the decode calls under test must allocate
//! nothing at all on their thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use reactor::codec::{DecodeError, Decoder, LengthCodec, LineCodec};

/// Forwards to the system allocator, counting allocations per thread.
struct Counting;

thread_local! {
    /// Allocations made by this thread. `const` init: reading it never
    /// allocates, so the allocator cannot recurse into itself.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call forwards unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter is a thread-local `Cell` with const
// initialisation and no destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (result, ALLOCATIONS.with(Cell::get) - before)
}

/// What decoding a whole stream produced: the frames, then either the
/// unconsumed tail (a partial frame) or the error that ended it.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Frames decoded, in order.
    frames: Vec<Vec<u8>>,
    /// The partial frame left over, or the error that stopped decoding.
    end: Result<Vec<u8>, DecodeError>,
}

/// Decodes `input` in one piece.
fn decode_at_once(codec: &impl Decoder, input: &[u8]) -> Outcome {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        match codec.decode(&input[at..]) {
            Ok(Some(d)) => {
                assert!(d.frame.len() < d.consumed && d.consumed <= input.len() - at);
                frames.push(d.frame.to_vec());
                at += d.consumed;
            }
            Ok(None) => {
                return Outcome {
                    frames,
                    end: Ok(input[at..].to_vec()),
                }
            }
            Err(e) => {
                return Outcome {
                    frames,
                    end: Err(e),
                }
            }
        }
    }
}

/// Decodes `input` the way the reactor delivers it: reads of the given sizes,
/// each appended to the leftovers of the previous `data` call, which consumes
/// a prefix and leaves the rest.
fn decode_in_reads(codec: &impl Decoder, input: &[u8], reads: &[usize]) -> Outcome {
    let mut frames = Vec::new();
    let mut leftovers: Vec<u8> = Vec::new();
    let mut rest = input;
    let mut sizes = reads.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        leftovers.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        // One `data` call: decode what is complete, report the consumed count.
        let mut consumed = 0;
        loop {
            match codec.decode(&leftovers[consumed..]) {
                Ok(Some(d)) => {
                    frames.push(d.frame.to_vec());
                    consumed += d.consumed;
                }
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        frames,
                        end: Err(e),
                    }
                }
            }
        }
        leftovers.drain(..consumed);
    }
    Outcome {
        frames,
        end: Ok(leftovers),
    }
}

/// Bytes rich in line terminators, so random input contains many lines.
fn line_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => b'a'..=b'z',
        2 => Just(b'\n'),
        2 => Just(b'\r'),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..max_len)
}

/// A stream of length-prefixed frames, some possibly over `max`, with random
/// bytes after them.
fn length_stream() -> impl Strategy<Value = Vec<u8>> {
    let frame = proptest::collection::vec(any::<u8>(), 0..80);
    (
        proptest::collection::vec(frame, 0..12),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(frames, tail)| {
            let mut out = Vec::new();
            for f in frames {
                out.extend_from_slice(&(f.len() as u32).to_be_bytes());
                out.extend_from_slice(&f);
            }
            out.extend_from_slice(&tail);
            out
        })
}

/// Valid lines for `LineCodec::new(max)`: no `\n`, no trailing `\r`.
fn valid_lines(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let line = proptest::collection::vec(any::<u8>(), 0..=max).prop_map(|mut l| {
        l.retain(|&b| b != b'\n');
        while l.last() == Some(&b'\r') {
            l.pop();
        }
        l
    });
    proptest::collection::vec(line, 0..20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lines_decode_the_same_in_any_split(
        input in line_bytes(400),
        max in 0usize..40,
        reads in proptest::collection::vec(1usize..50, 1..10),
    ) {
        let codec = LineCodec::new(max);
        prop_assert_eq!(decode_in_reads(&codec, &input, &reads), decode_at_once(&codec, &input));
    }

    #[test]
    fn length_frames_decode_the_same_in_any_split(
        input in length_stream(),
        max in 0usize..100,
        reads in proptest::collection::vec(1usize..50, 1..10),
    ) {
        let codec = LengthCodec::new(max);
        prop_assert_eq!(decode_in_reads(&codec, &input, &reads), decode_at_once(&codec, &input));
    }

    #[test]
    fn lines_round_trip(lines in valid_lines(30), crlf in any::<bool>()) {
        let codec = LineCodec::new(30);
        let mut wire = Vec::new();
        for line in &lines {
            codec.encode(line, &mut wire).unwrap();
        }
        if crlf {
            // Peers such as telnet end lines with "\r\n"; same frames.
            wire = wire.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
        }
        let outcome = decode_at_once(&codec, &wire);
        prop_assert_eq!(outcome.frames, lines);
        prop_assert_eq!(outcome.end, Ok(Vec::new()));
    }

    #[test]
    fn length_frames_round_trip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..10)) {
        let codec = LengthCodec::new(200);
        let mut wire = Vec::new();
        for frame in &frames {
            codec.encode(frame, &mut wire).unwrap();
        }
        let outcome = decode_at_once(&codec, &wire);
        prop_assert_eq!(outcome.frames, frames);
        prop_assert_eq!(outcome.end, Ok(Vec::new()));
    }

    #[test]
    fn an_oversized_declared_length_fails_on_the_header_without_allocating(
        max in 0usize..1_000_000,
        declared in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        prop_assume!(declared as usize > max);
        let codec = LengthCodec::new(max);
        let mut input = declared.to_be_bytes().to_vec();
        input.extend_from_slice(&body);
        let (result, allocations) = allocations_during(|| codec.decode(&input));
        prop_assert_eq!(result, Err(DecodeError::FrameTooLong { declared, max }));
        prop_assert_eq!(allocations, 0);
        prop_assert!(codec.encode(&vec![0; max + 1], &mut Vec::new()).is_err());
    }

    #[test]
    fn an_endless_line_fails_once_past_the_max_without_allocating(
        max in 0usize..2000,
        filler in any::<u8>(),
        extra in 2usize..5000,
    ) {
        prop_assume!(filler != b'\n' && filler != b'\r');
        let codec = LineCodec::new(max);
        let endless = vec![filler; max + extra];
        // Undecided up to the max, an error from just past it on.
        prop_assert_eq!(codec.decode(&endless[..max]), Ok(None));
        let (result, allocations) = allocations_during(|| codec.decode(&endless));
        prop_assert_eq!(result, Err(DecodeError::LineTooLong { max }));
        prop_assert_eq!(allocations, 0);
        prop_assert_eq!(codec.decode(&endless[..max + 1]), Err(DecodeError::LineTooLong { max }));
    }

    #[test]
    fn garbage_never_panics_nor_allocates(
        input in proptest::collection::vec(any::<u8>(), 0..2000),
        max in any::<usize>(),
    ) {
        for codec in [&LineCodec::new(max) as &dyn DynDecoder, &LengthCodec::new(max)] {
            let mut at = 0;
            while let Ok(Some(consumed)) = codec.step(&input[at..]) {
                at += consumed;
            }
        }
        let ((), allocations) = allocations_during(|| {
            let _ = LineCodec::new(max).decode(&input);
            let _ = LengthCodec::new(max).decode(&input);
        });
        prop_assert_eq!(allocations, 0);
    }
}

/// Object-safe view of a decoder, so one loop can drive both codecs.
trait DynDecoder {
    /// Bytes the first frame spans, checking the `Decoded` invariants.
    fn step(&self, input: &[u8]) -> Result<Option<usize>, DecodeError>;
}

impl<D: Decoder> DynDecoder for D {
    fn step(&self, input: &[u8]) -> Result<Option<usize>, DecodeError> {
        Ok(self.decode(input)?.map(|d| {
            assert!(d.frame.len() < d.consumed && d.consumed <= input.len());
            d.consumed
        }))
    }
}

#[test]
fn encoders_refuse_what_would_not_decode_back() {
    let codec = LineCodec::new(10);
    let mut out = Vec::new();
    assert!(codec.encode(b"a\nb", &mut out).is_err());
    assert!(codec.encode(b"ab\r", &mut out).is_err());
    assert!(codec.encode(&[b'x'; 11], &mut out).is_err());
    assert!(
        out.is_empty(),
        "a failed encode leaves the buffer unchanged"
    );
    codec.encode(b"a\rb", &mut out).unwrap();
    assert_eq!(codec.decode(&out).unwrap().unwrap().frame, b"a\rb");
}

#[test]
fn the_allocation_counter_sees_allocations() {
    // Guards the zero-allocation properties above against a counter that
    // counts nothing.
    let (v, allocations) = allocations_during(|| vec![1u8; 10]);
    assert_eq!(v.len(), 10);
    assert!(allocations >= 1);
}
