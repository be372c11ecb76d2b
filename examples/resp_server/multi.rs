//! Transactions in the `resp_server` example: MULTI, EXEC and DISCARD, and
//! the entry every command goes through, which queues commands between
//! MULTI and EXEC instead of running them; and WATCH/UNWATCH, the
//! optimistic locking that makes EXEC fail when a watched key was written.
//!
//! redis-py's `pipeline()` is a transaction unless told otherwise, so a
//! client's batch arrives as MULTI, the commands, EXEC. The loop has one
//! thread, so EXEC running the queue in one go is already atomic: no other
//! client's command can come between. WATCH compares write counts the
//! store keeps for watched keys only (`Store::watch`), so a key written
//! and then deleted again still counts as changed, as in Redis.
//!
//! The queue holds copies of the commands' arguments, so it counts
//! against the query buffer cap (`--max-query`): a client that queues more
//! than that is disconnected, as one whose query buffer outgrows it is.
//! Without this, MULTI followed by endless commands would grow without
//! bound.
//!
//! Replies follow Redis 7: `+QUEUED` for each queued command; a command
//! refused while queuing (unknown, wrong arity) makes EXEC answer
//! `-EXECABORT`; EXEC answers the queued commands' replies as one array.

use crate::cmd::Cmd;
use crate::commands::After;
use crate::conn::Session;
use crate::replies::Replies;
use crate::reply::{array, error, simple};
use crate::RespServer;

/// A transaction being queued (between MULTI and EXEC).
#[derive(Debug, Default)]
pub struct Multi {
    /// The queued commands, admitted, with their arguments copied out of
    /// the input (which is consumed as they are queued). Bounded by what
    /// the client sends, as Redis's queue is.
    queued: Vec<(Cmd, Vec<Vec<u8>>)>,
    /// A command was refused while queuing: EXEC discards the transaction.
    dirty: bool,
    /// Bytes `queued` holds (arguments and their slots), checked against
    /// the query buffer cap.
    bytes: usize,
}

impl Multi {
    /// Commands queued (CLIENT LIST's `multi=`).
    pub fn count(&self) -> usize {
        self.queued.len()
    }

    /// Bytes the queue holds (CLIENT LIST's `multi-mem=`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl RespServer {
    /// Runs (or, inside MULTI, queues) the command `argv`, name first.
    pub fn run(
        &mut self,
        r: &mut Replies<'_, '_>,
        argv: &[&[u8]],
        session: &mut Session,
        now: i64,
    ) -> After {
        let restricted = session.subscribed() && !session.resp3;
        let Some(cmd) = Cmd::admit(r, argv, restricted) else {
            if let Some(multi) = session.multi.as_mut() {
                multi.dirty = true;
            }
            return After::Continue;
        };
        session.last_cmd = cmd.full_name(&argv[1..]);
        let Some(multi) = session.multi.as_mut() else {
            match cmd {
                Cmd::Multi => {
                    session.multi = Some(Multi::default());
                    simple(r.buf(), "OK");
                }
                Cmd::Exec => error(r.buf(), "ERR EXEC without MULTI"),
                Cmd::Watch => return self.watch(r, &argv[1..], session, now),
                Cmd::Discard => error(r.buf(), "ERR DISCARD without MULTI"),
                _ => return self.execute(r, cmd, argv, session, now),
            }
            return After::Continue;
        };
        match cmd {
            Cmd::Multi => error(r.buf(), "ERR MULTI calls can not be nested"),
            Cmd::Watch => error(r.buf(), "ERR WATCH inside MULTI is not allowed"),
            Cmd::Discard => {
                session.multi = None;
                self.unwatch_all(session);
                simple(r.buf(), "OK");
            }
            // Run at once, as in Redis (RESET also ends the transaction).
            Cmd::Quit | Cmd::Reset => return self.execute(r, cmd, argv, session, now),
            Cmd::Exec => {
                let multi = std::mem::take(multi);
                session.multi = None;
                let changed = session
                    .watching
                    .iter()
                    .any(|(key, writes)| self.store.writes(key, now) != *writes);
                self.unwatch_all(session);
                if multi.dirty {
                    let text = "EXECABORT Transaction discarded because of previous errors.";
                    error(r.buf(), text);
                    return After::Continue;
                }
                if changed {
                    // A null array in RESP2 (`*-1`), null in RESP3.
                    match r.resp3 {
                        true => r.null(),
                        false => r.buf().extend_from_slice(b"*-1\r\n"),
                    }
                    return After::Continue;
                }
                array(r.buf(), multi.queued.len());
                for (cmd, argv) in &multi.queued {
                    let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                    // No queued command closes: QUIT is never queued.
                    self.execute(r, *cmd, &argv, session, now);
                    r.reply_done();
                }
            }
            _ => {
                let slot = std::mem::size_of::<Vec<u8>>();
                multi.bytes += argv.iter().map(|a| a.len() + slot).sum::<usize>();
                if multi.bytes > self.max_query {
                    log::info!("{}: transaction over --max-query; closing", r.conn);
                    session.multi = None;
                    return After::Close;
                }
                let owned = argv.iter().map(|a| a.to_vec()).collect();
                multi.queued.push((cmd, owned));
                simple(r.buf(), "QUEUED");
            }
        }
        After::Continue
    }

    /// `WATCH key...` outside a transaction: remembers each key's write
    /// count (a key watched twice once). The watched keys count against
    /// `--max-query`, like a transaction's queue.
    fn watch(
        &mut self,
        r: &mut Replies<'_, '_>,
        keys: &[&[u8]],
        session: &mut Session,
        now: i64,
    ) -> After {
        for key in keys {
            if !session.watching.iter().any(|(k, _)| k == key) {
                let writes = self.store.watch(key, now);
                session.watching.push((key.to_vec(), writes));
            }
        }
        let slot = std::mem::size_of::<(Vec<u8>, u64)>();
        let bytes: usize = session.watching.iter().map(|(k, _)| k.len() + slot).sum();
        if bytes > self.max_query {
            log::info!("{}: watched keys over --max-query; closing", r.conn);
            return After::Close;
        }
        simple(r.buf(), "OK");
        After::Continue
    }

    /// Forgets the connection's watched keys (EXEC, DISCARD, UNWATCH,
    /// RESET, or the connection is gone).
    pub fn unwatch_all(&mut self, session: &mut Session) {
        for (key, _) in session.watching.drain(..) {
            self.store.unwatch(&key);
        }
    }
}
