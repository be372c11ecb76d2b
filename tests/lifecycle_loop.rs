//! The loop around the connections: two timers due in the same turn (the
//! first cancels the second, which then never fires), and `Context::stop`
//! returning from `run` with connections open, which a second `run` serves
//! where they left off; a stop asked for before `run` is honoured, once.
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{echo_once, Echo};
use reactor::{CloseReason, Config, ConnId, Context, Fired, Handler};

// ---------------------------------------------------------------------------
// Timers due together

/// On a message, arms two timers for the same instant; the first to fire
/// cancels the second.
#[derive(Default)]
struct Twins {
    second: Option<reactor::TimerId>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Handler for Twins {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        input.len()
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        ctx.start_timer(Duration::from_millis(20), 1);
        self.second = Some(ctx.start_timer(Duration::from_millis(20), 2));
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        let mut log = self.log.lock().unwrap();
        log.push(format!("fired {}", fired.tag));
        if let Some(second) = self.second.take() {
            log.push(format!("cancel: {}", ctx.cancel_timer(second)));
        }
    }
}

/// Two timers expire in the same turn and the first one's callback cancels
/// the second: the cancel succeeds and the second never fires (it had not
/// been delivered yet, even though the wheel had already handed it over).
#[test]
fn a_timer_cancelled_by_a_timer_due_in_the_same_turn_does_not_fire() {
    let twins = Twins::default();
    let log = Arc::clone(&twins.log);
    let server = common::start(twins, Config::default());
    server.handle.send(()).unwrap();
    server.wait_for("a timer", Duration::from_secs(5), |s| s.timers_fired >= 1);
    // Leave the second timer ample time to (wrongly) fire.
    thread::sleep(Duration::from_millis(100));
    let stats = server.handle.stats();
    drop(server.stop());
    assert_eq!(*log.lock().unwrap(), ["fired 1", "cancel: true"]);
    assert_eq!(stats.timers_fired, 1);
}

// ---------------------------------------------------------------------------
// Stopping and resuming the loop

/// Echoes; `stop` makes `run` return after this turn.
fn echo_and_stop_on_stop(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    if input == b"stop" {
        ctx.stop();
    }
    common::echo(ctx, conn, input);
}

/// `Context::stop` makes `run` return with connections still open (the
/// reply written in that turn still leaves); running the same reactor again
/// serves them where they left off.
#[test]
fn stop_returns_from_run_and_run_again_resumes_the_same_connections() {
    let mut server = common::start(Echo::with(echo_and_stop_on_stop), Config::default());
    let mut client = common::client(server.addr);
    echo_once(&mut client, b"before");
    echo_once(&mut client, b"stop");
    let mut reactor = common::join_within(server.thread.take().unwrap(), Duration::from_secs(10));
    assert_eq!(reactor.connection_count(), 1);
    // Sent while nobody runs the loop: waits in the socket.
    client.write_all(b"while stopped").unwrap();
    let handle = reactor.handle();
    let thread = thread::spawn(move || {
        reactor.run().unwrap();
        reactor
    });
    let mut echo = [0; 13];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"while stopped");
    echo_once(&mut client, b"after");
    drop(client);
    common::wait_for_stats(&handle, "the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    handle.stop();
    let reactor = common::join_within(thread, Duration::from_secs(10));
    assert_eq!(reactor.stats().closed(CloseReason::PeerClosed), 1);
}

// ---------------------------------------------------------------------------
// A stop asked for before `run`

/// `Context::stop` from `with_context`, before `run`: `run` returns at once
/// (it used to clear the request and block), and the request is used up, so
/// a later `run` turns the loop again until the next stop.
#[test]
fn a_stop_before_run_returns_at_once_and_is_used_up() {
    let (done, finished) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut reactor = reactor::Reactor::new(Twins::default(), Config::default()).unwrap();
        reactor.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        reactor.with_context(|_, ctx| ctx.stop());
        reactor.run().unwrap();
        let first = reactor.stats().poll_calls;
        // Used up: this run turns until the handle's stop arrives.
        let handle = reactor.handle();
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            handle.stop();
        });
        reactor.run().unwrap();
        stopper.join().unwrap();
        done.send((first, reactor.stats().poll_calls)).unwrap();
    });
    let (first, second) = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("run did not return after a stop asked for before it");
    assert_eq!(first, 0, "the first run polled though a stop was pending");
    assert!(second > first, "the second run never turned the loop");
}
