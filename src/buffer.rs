//! Per-connection byte buffers: leftover input and queued output.
//!
//! Both start empty and unallocated, so an idle connection costs only the
//! struct itself. Reads land in the reactor's one shared scratch buffer; only
//! the bytes a handler leaves unconsumed (a partial message) are copied into
//! the connection's [`InputBuffer`]. Output is a queue of chunks written with
//! one vectored `sendmsg(MSG_NOSIGNAL)` call, so a pipelined batch of replies
//! leaves in one system call, and a write to a reset peer returns `EPIPE`
//! instead of raising `SIGPIPE`.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use socket2::SockRef;

/// Small chunks are copied into the tail chunk up to this size, so many tiny
/// replies do not become many iovecs.
const COALESCE_LIMIT: usize = 16 * 1024;
/// Capacity an input buffer may keep once the large message that grew it
/// is consumed; beyond this the leftovers move to a smaller allocation, so
/// one 10 MB request does not pin 10 MB for the connection's life.
const INPUT_RETAINED: usize = 64 * 1024;
/// Most chunks handed to one `sendmsg` (Linux allows 1024).
const MAX_IOVECS: usize = 64;
/// `MSG_NOSIGNAL` (Linux): a send to a peer that reset fails with `EPIPE`
/// instead of raising SIGPIPE. socket2's `send` and `send_vectored` pass no
/// flags at all, so without this a process that does not ignore SIGPIPE (a C
/// host embedding the library) is killed by a write to a dead peer; the
/// kernel raises it when the peer reset after its FIN (CLOSE_WAIT), see
/// tests/sigpipe.rs. Spelled out because the crate has no `libc` dependency.
const MSG_NOSIGNAL: i32 = 0x4000;

/// Unconsumed input of one connection.
#[derive(Debug, Default)]
pub(crate) struct InputBuffer {
    /// Bytes not yet consumed by the handler, from `start`.
    bytes: Vec<u8>,
    /// Offset of the first unconsumed byte. Invariant: `start <= bytes.len()`.
    start: usize,
}

impl InputBuffer {
    /// Unconsumed bytes.
    pub(crate) fn unconsumed(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends freshly read bytes behind the leftovers.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            // Compact before growing: the consumed prefix is dead weight.
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Marks `n` leading bytes consumed; frees the allocation once empty,
    /// and gives back most of it once what is left is small beside it.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.bytes.len() {
            *self = InputBuffer::default();
        } else if self.bytes.capacity() > INPUT_RETAINED && self.len() * 4 <= self.bytes.capacity()
        {
            // Copies at most a quarter of the capacity, so a pipeline of
            // large messages consumed one by one stays linear.
            self.bytes.drain(..self.start);
            self.start = 0;
            self.bytes.shrink_to(INPUT_RETAINED);
        }
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Output queued for one connection, oldest chunk first.
#[derive(Debug, Default)]
pub(crate) struct OutputQueue {
    /// Chunks waiting to be written. Invariant: no chunk is empty past
    /// `head_offset`.
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    head_offset: usize,
    /// Total unwritten bytes across `chunks`. Invariant: equals the sum of
    /// chunk lengths minus `head_offset`.
    queued: usize,
}

impl OutputQueue {
    pub(crate) fn len(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Copies `data` into the queue, coalescing small writes.
    pub(crate) fn push_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            Some(tail) if tail.len() + data.len() <= COALESCE_LIMIT.max(tail.capacity()) => {
                tail.extend_from_slice(data)
            }
            _ if data.len() <= COALESCE_LIMIT => {
                let mut chunk = Vec::with_capacity(COALESCE_LIMIT.min(data.len().max(512)));
                chunk.extend_from_slice(data);
                self.chunks.push_back(chunk);
            }
            _ => self.chunks.push_back(data.to_vec()),
        }
        self.queued += data.len();
    }

    /// Queues an owned chunk without copying it.
    pub(crate) fn push_vec(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.queued += data.len();
        self.chunks.push_back(data);
    }

    /// One vectored send of as much as is queued. Returns the bytes written
    /// and whether the socket took everything offered (`false`: a short
    /// write, the send buffer is full).
    pub(crate) fn send_to(&mut self, socket: SockRef<'_>) -> io::Result<(usize, bool)> {
        if self.queued == 0 {
            return Ok((0, true));
        }
        let mut offered = self.chunks[0].len() - self.head_offset;
        let written = if self.chunks.len() == 1 {
            send_slice(socket, &self.chunks[0][self.head_offset..])?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let offset = if i == 0 { self.head_offset } else { 0 };
                slices[i] = IoSlice::new(&chunk[offset..]);
                if i > 0 {
                    offered += chunk.len();
                }
                count += 1;
            }
            socket.send_vectored_with_flags(&slices[..count], MSG_NOSIGNAL)?
        };
        self.advance(written);
        Ok((written, written == offered))
    }

    /// Drops `n` written bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front_left = self.chunks[0].len() - self.head_offset;
            if n < front_left {
                self.head_offset += n;
                return;
            }
            n -= front_left;
            self.chunks.pop_front();
            self.head_offset = 0;
        }
        if self.queued == 0 {
            // Free the memory of a drained queue: idle connections stay small.
            *self = OutputQueue::default();
        }
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

/// One `send(MSG_NOSIGNAL)` of `data`: bytes written, or the error.
pub(crate) fn send_slice(socket: SockRef<'_>, data: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(data, MSG_NOSIGNAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn input_keeps_leftovers_and_frees_when_consumed() {
        let mut input = InputBuffer::default();
        input.extend(b"hello wor");
        input.consume(6);
        assert_eq!(input.unconsumed(), b"wor");
        input.extend(b"ld\n");
        assert_eq!(input.unconsumed(), b"world\n");
        input.consume(6);
        assert!(input.is_empty());
        assert_eq!(input.capacity(), 0);
    }

    #[test]
    fn input_gives_back_a_large_message_s_memory() {
        let mut input = InputBuffer::default();
        input.extend(&vec![b'x'; 10 << 20]);
        input.extend(b"next");
        input.consume(10 << 20);
        assert_eq!(input.unconsumed(), b"next");
        assert!(input.capacity() <= INPUT_RETAINED, "{}", input.capacity());
    }

    #[test]
    fn output_coalesces_small_writes_and_sends_all_chunks_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut queue = OutputQueue::default();
        queue.push_slice(b"ab");
        queue.push_slice(b"cd");
        queue.push_vec(vec![b'e'; 40_000]);
        queue.push_slice(b"fg");
        assert_eq!(queue.chunks.len(), 3);
        assert_eq!(queue.len(), 40_006);
        let mut sent = 0;
        while !queue.is_empty() {
            sent += queue.send_to(SockRef::from(&server)).unwrap().0;
        }
        assert_eq!(sent, 40_006);
        assert_eq!(queue.capacity(), 0);
        drop(server);
        let mut got = Vec::new();
        (&client).read_to_end(&mut got).unwrap();
        assert_eq!(&got[..4], b"abcd");
        assert!(got[4..40_004].iter().all(|&b| b == b'e'));
        assert_eq!(&got[40_004..], b"fg");
    }
}
