//! The UDP echo, verified: one connected socket per "connection",
//! registered with the loop as a plain source, each datagram numbered and
//! checked on its return.
//!
//! Datagrams may be lost, duplicated, reordered or cut, so unlike TCP each
//! carries its number in its first 8 bytes and is matched to its slot; the
//! rest is a slice of the stream pattern, as for TCP. A datagram not back
//! within `--timeout` is declared lost and its slot freed.

use std::collections::HashMap;
use std::io;
use std::time::Instant;

use reactor::SourceId;

use crate::cli::MAX_DATAGRAM;
use crate::generator::Generator;

/// One UDP "connection": a connected socket registered with the loop.
pub struct UdpConn {
    /// The socket, connected to the server.
    pub socket: mio::net::UdpSocket,
    /// Global connection number, as for TCP.
    number: u64,
    /// Datagrams sent so far; datagram `m` carries `m` in its first 8 bytes.
    sent: u64,
    /// Datagrams the open-loop schedule has made due (rate mode).
    pub due: u64,
    /// Datagram `m` in flight sits at `slots[m % len]`, `len == max(depth,
    /// 1)`; a slot is reused only once free, so at most `depth` datagrams
    /// are in flight.
    slots: Box<[Slot]>,
    /// On the pacer's list of sockets to refill this pass; cleared by the
    /// pacer's refill.
    pub queued_for_refill: bool,
}

/// One in-flight datagram.
#[derive(Clone, Copy)]
struct Slot {
    /// Datagram number; meaningful only while `live`.
    msg: u64,
    /// When it was sent.
    at: Instant,
    /// Waiting for its echo.
    live: bool,
}

impl UdpConn {
    /// Socket `number`, with room for `depth` datagrams in flight.
    pub fn new(socket: mio::net::UdpSocket, number: u64, depth: usize, now: Instant) -> Self {
        let free = Slot {
            msg: 0,
            at: now,
            live: false,
        };
        UdpConn {
            socket,
            number,
            sent: 0,
            due: 0,
            slots: vec![free; depth.max(1)].into_boxed_slice(),
            queued_for_refill: false,
        }
    }
}

/// This thread's UDP sockets and the buffers they share.
pub struct UdpSockets {
    /// The sockets by local index (position == lane in the schedule).
    pub all: Vec<UdpConn>,
    /// Local index by the source id the loop reports readiness with.
    by_source: HashMap<SourceId, usize>,
    /// Receive buffer, `MAX_DATAGRAM` bytes; taken while a socket drains.
    datagram: Vec<u8>,
    /// Send buffer for one datagram (`--size` bytes), reused for every send.
    send_buf: Vec<u8>,
}

impl UdpSockets {
    /// No sockets yet; datagrams of `size` bytes.
    pub fn new(size: usize) -> Self {
        UdpSockets {
            all: Vec::new(),
            by_source: HashMap::new(),
            datagram: vec![0; MAX_DATAGRAM],
            send_buf: vec![0; size],
        }
    }

    /// Adds a socket the loop knows as `id`.
    pub fn add(&mut self, id: SourceId, conn: UdpConn) {
        self.by_source.insert(id, self.all.len());
        self.all.push(conn);
    }

    /// Global numbers of the sockets, by local index.
    pub fn numbers(&self) -> Vec<u64> {
        self.all.iter().map(|u| u.number).collect()
    }

    /// The local index of the socket the loop calls `source`.
    pub fn index_of(&self, source: SourceId) -> Option<usize> {
        self.by_source.get(&source).copied()
    }

    /// Datagrams still awaiting their echo, all sockets.
    pub fn in_flight(&self) -> u64 {
        self.all
            .iter()
            .map(|u| u.slots.iter().filter(|s| s.live).count() as u64)
            .sum()
    }
}

impl Generator {
    /// Sends what UDP socket `index` may send now: one datagram each.
    pub fn refill_udp(&mut self, index: usize, now: Instant) {
        let size = self.args.size;
        if self.args.depth == 0 {
            return;
        }
        loop {
            let u = &self.udp.all[index];
            let slot = (u.sent % u.slots.len() as u64) as usize;
            if u.slots[slot].live || self.allowance(u.sent, u.sent, u.due) == 0 {
                return;
            }
            let (m, number) = (u.sent, u.number);
            let datagram = &mut self.udp.send_buf[..size];
            datagram[..8].copy_from_slice(&m.to_le_bytes());
            datagram[8..].copy_from_slice(self.pattern.slice(number, m * size as u64, size - 8));
            let u = &mut self.udp.all[index];
            match u.socket.send(datagram) {
                Ok(_) => {
                    u.slots[slot] = Slot {
                        msg: m,
                        at: now,
                        live: true,
                    };
                    u.sent += 1;
                }
                // The socket buffer is full: the next echo or sweep retries.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ECONNREFUSED left by an earlier ICMP error, and the like:
                // the datagram is lost; count it as such.
                Err(_) => {
                    self.counters.udp_lost += 1;
                    u.sent += 1;
                }
            }
        }
    }

    /// Drains UDP socket `index`, verifying each datagram, then sends what
    /// the freed slots allow.
    pub fn receive_udp(&mut self, index: usize) {
        let size = self.args.size;
        let mut buf = std::mem::take(&mut self.udp.datagram);
        loop {
            let result = self.udp.all[index].socket.recv(&mut buf);
            let now = Instant::now();
            let len = match result {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier send; the sweep counts the loss.
                Err(_) => continue,
            };
            if len < size {
                self.counters.udp_truncated += 1;
                continue;
            }
            let m = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            let u = &self.udp.all[index];
            let slot = (m % u.slots.len() as u64) as usize;
            if m >= u.sent || !u.slots[slot].live || u.slots[slot].msg != m {
                if m < u.sent {
                    self.counters.udp_late += 1;
                } else {
                    self.counters.mismatches += 1;
                    self.counters.mismatched_bytes += len as u64;
                }
                continue;
            }
            let mut wrong = self
                .pattern
                .mismatches(u.number, m * size as u64, &buf[8..size]);
            wrong += (len - size) as u64;
            let at = u.slots[slot].at;
            self.udp.all[index].slots[slot].live = false;
            if wrong > 0 {
                self.counters.mismatches += 1;
                self.counters.mismatched_bytes += wrong;
                continue;
            }
            self.complete(now, index, m, at);
        }
        self.udp.datagram = buf;
        self.refill_udp(index, Instant::now());
    }

    /// Declares lost the datagrams unanswered for `--timeout` (on the
    /// `final_drain`, all unanswered ones) and refills the freed slots.
    pub fn sweep_udp(&mut self, now: Instant, final_drain: bool) {
        let timeout = self.args.timeout();
        for index in 0..self.udp.all.len() {
            for slot in self.udp.all[index].slots.iter_mut() {
                if slot.live && (final_drain || now.duration_since(slot.at) >= timeout) {
                    slot.live = false;
                    self.counters.udp_lost += 1;
                }
            }
            self.refill_udp(index, now);
        }
    }
}
