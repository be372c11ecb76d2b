//! Stale events and stale ids: nothing meant for a closed connection may
//! reach it or the connection that reuses its slot.
//!
//! The stale-event test builds, deterministically, the batch in which a
//! slot reused too early would hand a closed connection's events to a
//! newcomer; the stale-id test acts on a kept `ConnId` after its slot was
//! reused, which the id's generation must tell apart.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, Context, Fired, Handler};

// ---------------------------------------------------------------------------
// Stale events

/// What the stale-event handler saw.
#[derive(Default)]
struct StaleLog {
    opened: Vec<ConnId>,
    data: Vec<(ConnId, Vec<u8>)>,
    closes: Vec<(ConnId, CloseReason)>,
    blocking: bool,
}

/// Connection 0 (A) sending `kill` closes connection 1 (B). A message blocks
/// the loop, so the test can line up a batch of events behind it.
struct Killer {
    log: Arc<Mutex<StaleLog>>,
}

impl Handler for Killer {
    type State = ();
    /// Block the loop thread this long.
    type Message = Duration;

    fn opened(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        self.log.lock().unwrap().opened.push(conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let mut log = self.log.lock().unwrap();
        log.data.push((conn, input.to_vec()));
        if input == b"kill" {
            let victim = log.opened[1];
            ctx.close(victim);
        }
        input.len()
    }

    fn message(&mut self, _: &mut Context<'_, Self>, block: Duration) {
        self.log.lock().unwrap().blocking = true;
        thread::sleep(block);
        self.log.lock().unwrap().blocking = false;
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: CloseReason) {
        self.log.lock().unwrap().closes.push((conn, reason));
    }
}

/// While the loop is blocked, A sends `kill`, C connects and B sends data,
/// so the next poll returns [A readable, listener, B readable] in that order.
/// Handling A closes B; C is accepted in the same turn; B's event must then
/// be dropped as stale: it may reach neither B's `data` nor C (whose slot
/// must not be B's, since B's slot is freed only at the end of the turn).
#[test]
fn events_of_a_connection_closed_earlier_in_the_batch_are_dropped() {
    let log = Arc::new(Mutex::new(StaleLog::default()));
    let server = common::start(
        Killer {
            log: Arc::clone(&log),
        },
        Config::default(),
    );
    let opened = |n: usize| {
        common::wait_until("an accept", Duration::from_secs(5), || {
            log.lock().unwrap().opened.len() == n
        })
    };
    let mut a = common::client(server.addr);
    opened(1);
    let mut b = common::client(server.addr);
    opened(2);

    server.handle.send(Duration::from_millis(1500)).unwrap();
    common::wait_until("the loop to block", Duration::from_secs(5), || {
        log.lock().unwrap().blocking
    });
    a.write_all(b"kill").unwrap();
    thread::sleep(Duration::from_millis(20));
    let mut c = common::client(server.addr);
    thread::sleep(Duration::from_millis(20));
    b.write_all(b"secret").unwrap();
    assert!(
        log.lock().unwrap().blocking,
        "the loop woke before the batch was lined up; the machine is too slow"
    );

    opened(3);
    let stats = server.wait_for("the stale event", Duration::from_secs(5), |s| {
        s.stale_events >= 1
    });
    assert_eq!(stats.closed(CloseReason::ClosedLocally), 1);

    // C works, and only its own bytes reach it.
    c.write_all(b"c-data").unwrap();
    common::wait_until("C's data", Duration::from_secs(5), || {
        log.lock().unwrap().data.len() == 2
    });
    // B's end sees the close (EOF, or a reset since its data was unread).
    let mut buf = [0; 8];
    match b.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("B got {n} bytes"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    drop(server.stop());

    let log = log.lock().unwrap();
    let (a_id, b_id, c_id) = (log.opened[0], log.opened[1], log.opened[2]);
    assert_ne!(
        c_id.slot(),
        b_id.slot(),
        "C reused B's slot within the turn"
    );
    assert_eq!(
        log.data,
        [(a_id, b"kill".to_vec()), (c_id, b"c-data".to_vec())],
        "B's data reached a handler after B was closed"
    );
    let b_closes: Vec<_> = log.closes.iter().filter(|(id, _)| *id == b_id).collect();
    assert_eq!(b_closes, [&(b_id, CloseReason::ClosedLocally)]);
}

// ---------------------------------------------------------------------------
// Stale ids

/// Remembers the first connection's id; on `old`, acts on that id (which by
/// then names a closed connection whose slot was reused): write, close,
/// state queries and a bound timer must all leave the newcomer alone.
#[derive(Default)]
struct Keeper {
    ids: Arc<Mutex<Vec<ConnId>>>,
    results: Arc<Mutex<Vec<String>>>,
}

impl Handler for Keeper {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        self.ids.lock().unwrap().push(conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        if input == b"old" {
            let old = self.ids.lock().unwrap()[0];
            let mut results = self.results.lock().unwrap();
            results.push(format!("write: {:?}", ctx.write(old, b"ghost")));
            results.push(format!("state: {:?}", ctx.conn_state(old)));
            results.push(format!("queued: {:?}", ctx.queued_output(old)));
            ctx.start_conn_timer(old, Duration::from_millis(1), 9);
            ctx.close(old);
            ctx.close_after_flush(old);
            ctx.set_idle_timeout(old, Some(Duration::from_millis(1)));
        }
        let _ = ctx.write(conn, input);
        input.len()
    }

    fn timer(&mut self, _: &mut Context<'_, Self>, fired: Fired) {
        self.results
            .lock()
            .unwrap()
            .push(format!("timer fired for {:?}", fired.conn));
    }
}

/// A `ConnId` kept after its connection closed never reaches the
/// connection that reuses its slot (the generation tells them apart).
#[test]
fn a_stale_conn_id_never_reaches_the_slot_s_next_connection() {
    let keeper = Keeper::default();
    let (ids, results) = (Arc::clone(&keeper.ids), Arc::clone(&keeper.results));
    let server = common::start(keeper, Config::default());
    let first = common::client(server.addr);
    common::wait_until("first accept", Duration::from_secs(5), || {
        ids.lock().unwrap().len() == 1
    });
    drop(first);
    server.wait_for("first close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    let mut second = common::client(server.addr);
    second.write_all(b"old").unwrap();
    let mut echo = [0; 3];
    second.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"old");
    // Give the bound timer and the idle timeout time to (not) fire.
    thread::sleep(Duration::from_millis(50));
    second.write_all(b"again").unwrap();
    let mut echo = [0; 5];
    second.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"again", "the newcomer received the ghost write");

    let ids = ids.lock().unwrap().clone();
    assert_eq!(
        ids[0].slot(),
        ids[1].slot(),
        "precondition: the slab reuses the freed slot"
    );
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        *results.lock().unwrap(),
        ["write: Err(Gone)", "state: None", "queued: None"]
    );
    let stats = server.handle.stats();
    assert_eq!(stats.open_connections, 1);
    assert_eq!(stats.closed_total(), 1);
    assert_eq!(stats.timers_fired, 0);
}
