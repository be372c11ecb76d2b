//! Real TLS clients as child processes (`openssl s_client`, `python3`,
//! `curl`, `wrk`) and the in-process handlers the TLS tests serve them
//! with: a probe that answers with what the session negotiated, and a
//! canned HTTP responder.
//!
//! A [`Proc`] collects its stdout and stderr on threads of its own, so a
//! test waits for a piece of output with a time limit instead of blocking
//! on a pipe; it is killed and reaped when dropped.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reactor::{ConnId, Context, Handler};

use super::Echo;

/// A child process with piped stdin and its output collected as it comes.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    what: String,
}

impl Proc {
    /// Starts `program` with `args`.
    pub fn spawn(program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for mut pipe in [stdout, stderr] {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        Proc {
            stdin: child.stdin.take(),
            child,
            output,
            readers,
            what: format!("{program} {}", args.join(" ")),
        }
    }

    /// Writes `data` to its stdin.
    pub fn send(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(data).expect("write to child's stdin");
        stdin.flush().unwrap();
    }

    /// Closes its stdin (EOF on its input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Everything it printed so far, stdout and stderr interleaved.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until its output contains `text`; panics with the output
    /// after `limit`.
    pub fn wait_output(&self, text: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let output = self.output();
            if output.contains(text) {
                return output;
            }
            assert!(
                start.elapsed() < limit,
                "`{}` did not print {text:?} within {limit:?}; it printed:\n{output}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for it to exit; panics (killing it) after `limit`. Returns its
    /// status and complete output.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return (status, self.output());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "`{}` still running after {limit:?}; it printed:\n{}",
                    self.what,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills it and returns its complete output.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        self.wait_exit(Duration::from_secs(10)).1
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_client` to `addr` trusting `ca`, with `extra` arguments
/// (`-servername`, `-alpn`, `-quiet`, ...).
pub fn s_client(addr: SocketAddr, ca: &std::path::Path, extra: &[&str]) -> Proc {
    let connect = addr.to_string();
    let mut args = vec!["s_client", "-connect", &connect];
    let ca = ca.to_str().unwrap();
    args.extend(["-CAfile", ca]);
    args.extend(extra);
    Proc::spawn("openssl", &args)
}

/// An [`Echo`] that answers a line starting with `?` with what the session
/// negotiated: `alpn=<protocol or ->`, `sni=<name or ->`,
/// `kind=<Full|Resumed|...>`, `version=<...>`; anything else is echoed.
pub fn probe() -> Echo {
    Echo::with(probe_input)
}

fn probe_input(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    if !input.starts_with(b"?") {
        let _ = ctx.write(conn, input);
        return;
    }
    let alpn = ctx
        .alpn_protocol(conn)
        .map_or("-".to_string(), |p| String::from_utf8_lossy(p).into_owned());
    let sni = ctx.server_name(conn).unwrap_or("-").to_string();
    let session = ctx.tls(conn).expect("the handler runs after the handshake");
    let kind = session
        .handshake_kind()
        .map_or("-".to_string(), |k| format!("{k:?}"));
    let version = session
        .protocol_version()
        .map_or("-".to_string(), |v| format!("{v:?}"));
    let reply = format!("alpn={alpn} sni={sni} kind={kind} version={version}\n");
    let _ = ctx.write(conn, reply.as_bytes());
}

/// The body [`HttpOk`] serves.
pub const HTTP_BODY: &str = "hello from the TLS reactor\n";

/// A minimal HTTP/1.1 server: every request (a head ending in a blank
/// line; no bodies) gets `200 OK` with [`HTTP_BODY`], keep-alive.
pub struct HttpOk;

impl Handler for HttpOk {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let mut consumed = 0;
        while let Some(end) = find(&input[consumed..], b"\r\n\r\n") {
            consumed += end + 4;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{HTTP_BODY}",
                HTTP_BODY.len()
            );
            if ctx.write(conn, response.as_bytes()).is_err() {
                return input.len();
            }
        }
        consumed
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
