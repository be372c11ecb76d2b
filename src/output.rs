//! Writing: how a handler's output reaches the socket, and the flow control
//! that rides on it.
//!
//! **The rule.** `Context::write` queues; the loop sends. A connection's
//! queue (`OutputQueue`, a list of buffers) is written with one vectored
//! send per attempt until it is empty or the socket says `WouldBlock` (or
//! takes less than offered); the `writable` flag, set by an event, is
//! cleared only then, and the next writable edge resumes the queue. Output
//! for a connection written in its own `data` callback leaves right after
//! the callback; output for any other connection (a broadcast, a timer, a
//! message) goes on the dirty list and leaves before the loop sleeps. So
//! the loop batches: a handler never needs its own reply buffer to get one
//! system call per reply, and a fan-out costs one send per reader.
//!
//! **The optimisation**, clearly marked in [`LoopState::queue_output`]: the
//! shared staging buffer. While the running callback's own connection has an
//! empty queue, its writes are appended to one buffer the loop keeps
//! (`LoopState::staging`) and sent from there with one `write`; only what
//! the socket refuses is copied into the connection's queue. The common
//! reply then costs no allocation and no queue bookkeeping. Measured on the
//! echo benchmark: see docs/benchmarks.md, "The two optimisations".
//!
//! **Flow control.** A write past the hard cap closes the connection;
//! reaching the high-water mark marks it backpressured and sends at once
//! what the socket takes (write-through), so neither a large reply nor a
//! fan-out waits in memory for the end of the turn. A send that brings the
//! queue below the low-water mark lifts backpressure (then `drained` and a
//! new offer of input are owed, `flow.rs`), the fan-out hold of the readers
//! it filled (`fanout.rs`) and the soft-limit clock. What an empty queue
//! means for the connection's life (FIN, lingering, shutdown) is in
//! `close.rs`.

use std::io;
use std::time::Instant;

use log::{debug, trace};
use socket2::SockRef;

use crate::buffer;
use crate::callbacks::Loop;
use crate::close_reason::{CloseReason, Limit};
use crate::connection::live;
use crate::connection::Connection;
use crate::handler::{Handler, WriteError};
use crate::limits::Limits;
use crate::loop_state::{LoopState, Ready};
use crate::stats::Stats;
use crate::timers::TimerKind;
use crate::tls_steps::plaintext_waiting;
use crate::token::ConnId;

/// Capacity the shared staging buffer keeps between callbacks. A larger
/// reply grows it for the moment; afterwards it shrinks back, so one large
/// reply does not pin its size for the life of the process.
const STAGING_RETAINED: usize = 256 * 1024;

/// Bytes a handler asked to write.
pub(crate) enum Payload<'a> {
    /// Borrowed: copied into the staging buffer or the queue.
    Slice(&'a [u8]),
    /// Owned: queued as is.
    Owned(Vec<u8>),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Slice(data) => data,
            Payload::Owned(data) => data,
        }
    }
}

impl<H: Handler> LoopState<H> {
    /// Queues `payload` for `id`; it is written this turn.
    ///
    /// Output for the connection whose `data` callback is running, while its
    /// queue is empty, goes to the shared `staging` buffer instead: it is sent
    /// from there right after the callback, and only what the socket refuses
    /// is copied into the connection's own queue. The common reply thus costs
    /// no allocation, the way reads land in the shared `scratch` buffer.
    ///
    /// Flow control, in order: a write past the hard cap closes the
    /// connection; reaching the high-water mark marks it backpressured and
    /// sends at once what the socket takes (write-through), so neither a
    /// large reply nor a fan-out waits in memory for the end of the turn;
    /// still above it, a write from another connection's `data` callback
    /// holds that connection's reading (`fanout.rs`).
    #[inline]
    pub(crate) fn queue_output(
        &mut self,
        id: ConnId,
        payload: Payload<'_>,
    ) -> Result<(), WriteError> {
        let staging_for_me = self.current == Some(id);
        let staged = self.staged_len(id);
        let conn = live(&mut self.conns, id).ok_or(WriteError::Gone)?;
        if !conn.state.accepts_output() {
            return Err(WriteError::Gone);
        }
        let limits = conn.limits_in_force(&self.limits);
        let (max_output, high_water, soft) = (
            limits.max_output,
            limits.output_high_water,
            limits.soft_output.is_some(),
        );
        self.stats.writes += 1;
        let len = payload.len();
        // TLS: plaintext written before the handshake ended waits in rustls.
        let queued = conn.output.len() + staged + plaintext_waiting(conn) + len;
        if queued > max_output {
            debug!(
                "conn {id}: {} bytes queued plus {len} would pass the output cap",
                queued - len
            );
            self.close_now(id, CloseReason::LimitExceeded(Limit::Output));
            return Err(WriteError::OutputLimit);
        }
        if let Some(tls) = conn.tls.as_mut().filter(|_| crate::tls_session::ENABLED) {
            // Nothing may follow our close_notify on the wire.
            if tls.close_notify_queued() {
                return Err(WriteError::Gone);
            }
            // TLS: encrypted now; the records take the plain bytes' way.
            tls.encrypt(payload.as_slice());
            self.queue_tls_records(id);
            return self.after_queueing(id, queued, high_water, soft);
        }
        self.stats.queued_output_bytes += len as u64;
        // OPTIMISATION (the staging buffer; see the module's comment): the
        // running callback's own connection, with nothing queued, writes to
        // the shared buffer instead of its queue.
        let stage = staging_for_me && conn.output.is_empty();
        match payload {
            Payload::Slice(data) if stage => self.staging.extend_from_slice(data),
            Payload::Slice(data) => conn.output.push_slice(data),
            Payload::Owned(data) => {
                // An owned buffer is queued without copying; whatever was
                // staged before it must go first to keep the order.
                if stage && !self.staging.is_empty() {
                    conn.output.push_slice(&self.staging);
                    self.staging.clear();
                }
                conn.output.push_vec(data);
            }
        }
        self.mark_dirty(id);
        self.after_queueing(id, queued, high_water, soft)
    }

    /// Flow control after a write queued `queued` bytes in all for `id`:
    /// write-through at high water, the soft-limit clock.
    #[inline]
    fn after_queueing(
        &mut self,
        id: ConnId,
        queued: usize,
        high_water: usize,
        soft: bool,
    ) -> Result<(), WriteError> {
        if queued >= high_water {
            self.write_through(id, high_water);
        }
        if soft {
            self.check_soft_limit(id);
        }
        Ok(())
    }

    /// `id` reached its high-water mark: backpressure it and send what the
    /// socket takes now. A write from another connection's `data` callback
    /// that still leaves it above high water blocks the fan-out.
    fn write_through(&mut self, id: ConnId, high_water: usize) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        if !conn.flow.backpressured {
            trace!("conn {id}: backpressure on (high water reached)");
            conn.flow.backpressured = true;
            self.stats.backpressure_events += 1;
        }
        if conn.ready.writable && conn.state.writes_output() {
            self.stats.write_throughs += 1;
            self.unstage(id);
            self.send_queued(id);
        }
        self.note_fanout_target(id, high_water);
    }

    /// Arms or cancels the soft-limit timer of `id` as its queue crosses the
    /// soft limit.
    fn check_soft_limit(&mut self, id: ConnId) {
        let staged = self.staged_len(id);
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let Some(soft) = conn.limits_in_force(&self.limits).soft_output else {
            // No soft limit (any more, after `set_limits`): no clock.
            if let Some(timer) = conn.soft_limit_timer.take() {
                self.timers.cancel(timer);
            }
            return;
        };
        let (soft_bytes, deadline) = (soft.bytes, self.now + soft.duration);
        let above = conn.output.len() + staged > soft_bytes;
        match (above, conn.soft_limit_timer) {
            (true, None) => {
                debug!("conn {id}: above the soft output limit ({soft_bytes} bytes)");
                let timer = self.timers.insert(deadline, TimerKind::SoftLimit(id));
                if let Some(conn) = live(&mut self.conns, id) {
                    conn.soft_limit_timer = Some(timer);
                }
            }
            (false, Some(timer)) => {
                conn.soft_limit_timer = None;
                self.timers.cancel(timer);
            }
            _ => {}
        }
    }

    /// Moves what the running callback staged for `id` out of the shared
    /// staging buffer: sent at once if the socket is writable, the rest
    /// copied into the connection's queue (which is empty while bytes are
    /// staged, so the order holds).
    #[inline]
    pub(crate) fn unstage(&mut self, id: ConnId) {
        if self.current == Some(id) && !self.staging.is_empty() {
            self.unstage_now(id);
        }
    }

    /// The work of [`LoopState::unstage`], out of line.
    #[inline]
    fn unstage_now(&mut self, id: ConnId) {
        let mut sent = 0;
        if let Some(conn) = live(&mut self.conns, id) {
            if conn.ready.writable && conn.state.writes_output() {
                let socket = conn.socket.as_ref().expect("open connection has a socket");
                let result = buffer::send_slice(SockRef::from(socket), &self.staging)
                    .map(|n| (n, n == self.staging.len()));
                match note_send(&mut self.stats, conn, self.now, result) {
                    Ok(written) => sent = written,
                    // `close_now` drops the staged bytes with the rest.
                    Err(e) => {
                        debug!("conn {id}: write failed: {e}");
                        self.close_now(id, CloseReason::from_io(&e));
                    }
                }
            }
        }
        if sent < self.staging.len() {
            if let Some(conn) = live(&mut self.conns, id) {
                conn.output.push_slice(&self.staging[sent..]);
            }
        }
        self.staging.clear();
        if self.staging.capacity() > STAGING_RETAINED {
            self.staging.shrink_to(STAGING_RETAINED);
        }
    }

    /// Writes `id`'s queue with one vectored send per attempt, until it is
    /// empty or the socket refuses more; then lifts backpressure and the
    /// soft-limit clock if the queue fell low enough. A write error closes
    /// the connection.
    #[inline]
    pub(crate) fn send_queued(&mut self, id: ConnId) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        if !conn.state.writes_output() {
            return;
        }
        while conn.ready.writable && !conn.output.is_empty() {
            let socket = conn.socket.as_ref().expect("open connection has a socket");
            let result = conn.output.send_to(SockRef::from(socket));
            if let Err(e) = note_send(&mut self.stats, conn, self.now, result) {
                debug!("conn {id}: write failed: {e}");
                self.close_now(id, CloseReason::from_io(&e));
                return;
            }
        }
        // The common case, checked first: nothing to lift.
        if !conn.flow.backpressured && conn.soft_limit_timer.is_none() {
            return;
        }
        let limits = *conn.limits_in_force(&self.limits);
        if conn.flow.fanout_target && conn.output.len() < limits.output_high_water {
            self.fanout_target_done(id);
        }
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        // Called from a write-through, the staged bytes were just unstaged.
        // TLS: plaintext written during the handshake still waits in rustls.
        let queued = conn.output.len() + plaintext_waiting(conn);
        if conn.flow.backpressured && queued < limits.output_low_water {
            trace!("conn {id}: backpressure off ({queued} bytes queued)");
            conn.flow.backpressured = false;
            conn.owed.drained = true;
            conn.owed.offer |= !conn.input.is_empty();
            self.push_ready(Ready::Conn(id));
        }
        if limits.soft_output.is_some() {
            self.check_soft_limit(id);
        }
    }

    /// Bytes staged for `id`: those in `staging` if its `data` callback is
    /// running, else none (the buffer belongs to the running callback).
    pub(crate) fn staged_len(&self, id: ConnId) -> usize {
        if self.current == Some(id) {
            self.staging.len()
        } else {
            0
        }
    }

    /// Replaces the limits of `id`. Backpressure and the soft-limit clock
    /// follow the new marks at once (a lifted backpressure on the coming
    /// flush); a queue already above a lowered hard cap is not cut, only
    /// refused further writes.
    pub(crate) fn set_limits(&mut self, id: ConnId, limits: Limits) {
        let same_as_default = limits == self.limits;
        let staged = self.staged_len(id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.limits = (!same_as_default).then(|| Box::new(limits));
        if conn.output.len() + staged >= limits.output_high_water && !conn.flow.backpressured {
            conn.flow.backpressured = true;
            self.stats.backpressure_events += 1;
        }
        self.check_soft_limit(id);
        self.mark_dirty(id);
    }
}

/// Books the outcome of one send on `conn`: counters, `last_active`, and
/// the `writable` flag, which only `WouldBlock` or a short write clears.
/// Returns the bytes written, or the error that must close the connection.
#[inline]
pub(crate) fn note_send<S>(
    stats: &mut Stats,
    conn: &mut Connection<S>,
    now: Instant,
    result: io::Result<(usize, bool)>,
) -> io::Result<usize> {
    stats.write_syscalls += 1;
    match result {
        Ok((written, complete)) => {
            stats.bytes_out += written as u64;
            conn.bytes_out += written as u64;
            stats.queued_output_bytes -= written as u64;
            conn.last_active = now;
            if written > 0 {
                conn.last_sent = now;
            }
            if !complete {
                // Short write: the send buffer is full for now.
                conn.ready.writable = false;
            }
            Ok(written)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            conn.ready.writable = false;
            stats.would_blocks += 1;
            Ok(0)
        }
        // Interrupted before anything was sent: the caller may simply retry.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Writes `id`'s queued output (see [`LoopState::send_queued`]), then,
    /// if the queue is empty, takes the connection's next step in its life
    /// (`LoopState::output_written`: finish a close, send a half-close's FIN,
    /// close an idle connection in a shutdown).
    #[inline]
    pub(crate) fn flush(&mut self, id: ConnId) {
        let shutting_down = self.core.is_shutting_down();
        // Checked here, cheaply, because it runs after every reply: only a
        // closing connection, or any in a shutdown, has a next step.
        let next_step = |c: &Connection<H::State>| {
            c.output.is_empty() && (shutting_down || c.state.waits_for_output())
        };
        let Some(conn) = self.core.conn(id) else {
            return;
        };
        // Sending, or lifting backpressure or the soft-limit clock, is owed.
        let written = if (conn.ready.writable && !conn.output.is_empty())
            || conn.flow.backpressured
            || conn.soft_limit_timer.is_some()
        {
            self.core.send_queued(id);
            self.core.conn(id).is_some_and(next_step)
        } else {
            next_step(conn)
        };
        if written {
            self.output_written(id);
        }
    }

    /// Flushes every connection written to outside its own step.
    pub(crate) fn flush_dirty(&mut self) {
        while !self.core.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.core.dirty);
            for &id in &dirty {
                if let Some(conn) = crate::connection::record_mut(&mut self.core.conns, id) {
                    conn.in_dirty_list = false;
                }
                self.flush(id);
            }
            // Reuse the allocation if nothing new was queued meanwhile.
            if self.core.dirty.is_empty() {
                self.core.dirty = dirty;
                self.core.dirty.clear();
            }
        }
    }
}
