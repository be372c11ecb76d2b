//! The servers under comparison: what each speaks, how it is started, and
//! which of them this machine can run.
//!
//! The list is built at run time, not fixed: a peer whose program or load
//! tool is not installed is left out with a note, so a machine without
//! nginx or redis still compares what it can.

use std::path::PathBuf;

/// What a server speaks, and so which load tool and scenarios apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Raw byte echo over TCP, driven by `loadgen`.
    Echo,
    /// HTTP/1.1 `GET /` with keep-alive, driven by `wrk`.
    Http,
    /// Redis protocol `PING`, `SET` and `GET`, driven by `redis-benchmark`.
    Resp,
    /// HTTP/1.1 over TLS (`https://`): keep-alive requests driven by `wrk`,
    /// and a full handshake per request driven by `ab` (see
    /// [`Workload::Handshakes`](crate::scenarios::Workload::Handshakes)).
    Https,
    /// Byte echo over TLS, driven by `loadgen --tls`.
    TlsEcho,
    /// Byte echo by `echo_server --threads N` against itself at other N
    /// and modes, driven by loadgen: the many-loops rows (`threads-*`,
    /// issue 13).
    Loops,
}

impl Protocol {
    /// The TLS rows' protocols, whose servers need the run's certificate.
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::TlsEcho)
    }
}

/// How to start a server. Examples and C peers take `--addr 127.0.0.1:0`
/// and print "... listening on ADDR" on stderr; nginx and redis are given a
/// free port and waited on until it accepts.
#[derive(Clone, Debug)]
pub(crate) enum Launch {
    /// An example of the reactor (`examples/`) or of this package
    /// (`bench/examples/`), built with `--release`.
    Example(&'static str),
    /// A program compiled by this bench (a C peer): path once built.
    Command(PathBuf),
    /// nginx with `bench/nginx.conf` (one worker) on a port picked here.
    Nginx,
    /// `redis-server` without persistence on a port picked here.
    Redis,
    /// `echo_server --threads LOOPS` (with `--hand-off` if asked).
    Loops {
        /// Event loops, one thread each.
        loops: usize,
        /// One thread accepts and hands connections out, instead of
        /// SO_REUSEPORT.
        hand_off: bool,
    },
    /// An example of the reactor built with `--features tls` (copied to
    /// `load/tls-bin/`, so the plain rows keep the plain build), given the
    /// run's certificate with `--tls-cert` and `--tls-key`.
    TlsExample(&'static str),
    /// nginx with `bench/nginx-tls.conf`: `bench/nginx.conf` with `listen
    /// ... ssl` on the run's certificate, TLS 1.3 and X25519 only.
    NginxTls,
    /// nginx's stream module with `bench/nginx-stream.conf`: TLS
    /// terminated by one worker and proxied to the C echo server (the
    /// program here), started beside it on the same CPU.
    NginxStream {
        /// `ngx_stream_module.so` to `load_module`, or `None` when nginx
        /// has the module built in.
        module: Option<PathBuf>,
        /// The plain echo server behind it (`bench/c/epoll_echo.c`).
        backend: PathBuf,
    },
    /// `stunnel` (server mode, foreground) terminating TLS in front of the
    /// C echo server (the program here), started beside it on the same CPU.
    Stunnel {
        /// The stunnel program (`stunnel4` or `stunnel`).
        program: PathBuf,
        /// The plain echo server behind it.
        backend: PathBuf,
    },
}

/// One server under comparison.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// Short name used in tables, charts and `--peers`.
    pub(crate) name: &'static str,
    /// What it speaks.
    pub(crate) protocol: Protocol,
    /// How to start it.
    pub(crate) launch: Launch,
    /// The project's own server for its protocol: ratios are computed
    /// against it. One per protocol.
    pub(crate) is_project: bool,
    /// A client-ceiling peer (c-http): the least work a server can do per
    /// request, not a server compared on its merits. Other peers of its
    /// protocol are also given as a share of its throughput. At most one
    /// per protocol, never the project.
    pub(crate) ceiling: bool,
    /// Remark shown in the report (threads, buffering model).
    pub(crate) note: &'static str,
}

/// The servers compared. The first is the project; the C peers' paths are
/// filled in once they are compiled (`None`: left out).
pub(crate) fn peers(c_echo: Option<PathBuf>, c_http: Option<PathBuf>) -> Vec<Peer> {
    let tls_backend = c_echo.clone();
    let mut peers = vec![
        Peer {
            name: "reactor",
            protocol: Protocol::Echo,
            launch: Launch::Example("echo_server"),
            is_project: true,
            ceiling: false,
            note: "examples/echo_server.rs: this crate, one thread",
        },
        Peer {
            name: "tokio",
            protocol: Protocol::Echo,
            launch: Launch::Example("tokio_echo"),
            is_project: false,
            ceiling: false,
            note: "bench/examples/tokio_echo.rs: current-thread runtime, task per connection",
        },
        Peer {
            name: "threaded",
            protocol: Protocol::Echo,
            launch: Launch::Example("threaded_echo"),
            is_project: false,
            ceiling: false,
            note: "bench/examples/threaded_echo.rs: std, one blocking thread per connection",
        },
    ];
    if let Some(path) = c_echo {
        peers.push(Peer {
            name: "c-epoll",
            protocol: Protocol::Echo,
            launch: Launch::Command(path),
            is_project: false,
            ceiling: false,
            note: "bench/c/epoll_echo.c: cc -O2, one thread, edge-triggered",
        });
    }
    // HTTP and RESP compare only when the tools are installed; without them
    // the peers are left out with a note, never a failure.
    if has_program("wrk") {
        peers.push(Peer {
            name: "reactor-http",
            protocol: Protocol::Http,
            launch: Launch::Example("http_server"),
            is_project: true,
            ceiling: false,
            note: "examples/http_server.rs: this crate, one thread",
        });
        if has_program("nginx") {
            peers.push(Peer {
                name: "nginx",
                protocol: Protocol::Http,
                launch: Launch::Nginx,
                is_project: false,
                ceiling: false,
                note: "nginx, bench/nginx.conf: one worker, access log off, `return 200`",
            });
        } else {
            eprintln!("load: nginx not installed; HTTP has no peer");
        }
        if let Some(path) = c_http {
            peers.push(Peer {
                name: "c-http",
                protocol: Protocol::Http,
                launch: Launch::Command(path),
                is_project: false,
                ceiling: true,
                note: "bench/c/http_canned.c: canned response per request head; the client's ceiling, not an HTTP server",
            });
        }
    } else {
        eprintln!("load: wrk not installed; skipping HTTP");
    }
    if has_program("redis-benchmark") {
        peers.push(Peer {
            name: "reactor-resp",
            protocol: Protocol::Resp,
            launch: Launch::Example("resp_server"),
            is_project: true,
            ceiling: false,
            note: "examples/resp_server.rs: this crate, one thread",
        });
        if has_program("redis-server") {
            peers.push(Peer {
                name: "redis",
                protocol: Protocol::Resp,
                launch: Launch::Redis,
                is_project: false,
                ceiling: false,
                note: "redis-server: no persistence, io-threads 1",
            });
        } else {
            eprintln!("load: redis-server not installed; RESP has no peer");
        }
    } else {
        eprintln!("load: redis-benchmark not installed; skipping RESP");
    }
    peers.extend(tls_peers(tls_backend));
    peers
}

/// The many-loops rows' servers (issue 13): `echo_server --threads N` for
/// each of `counts`, with SO_REUSEPORT and, from 2 loops, with
/// `--hand-off` too. `loops-1` is the project row the others are divided
/// by. Names and notes are made here from the counts, so they are leaked
/// to be `'static` like every other peer's: a few bytes, once a run.
pub(crate) fn loops_peers(counts: &[usize]) -> Vec<Peer> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut peers = Vec::new();
    for &loops in counts {
        for hand_off in [false, true] {
            if hand_off && loops < 2 {
                continue;
            }
            let (name, note) = if hand_off {
                (
                    format!("loops-{loops}-hand-off"),
                    format!("examples/echo_server.rs --threads {loops} --hand-off: one thread accepts and hands each connection to the least-loaded of {loops} loops"),
                )
            } else if loops == 1 {
                (
                    "loops-1".to_string(),
                    "examples/echo_server.rs --threads 1: one loop (the single-loop path, as `reactor`)".to_string(),
                )
            } else {
                (
                    format!("loops-{loops}"),
                    format!("examples/echo_server.rs --threads {loops}: {loops} loops, each listening with SO_REUSEPORT"),
                )
            };
            peers.push(Peer {
                name: leak(name),
                protocol: Protocol::Loops,
                launch: Launch::Loops { loops, hand_off },
                is_project: loops == 1 && !hand_off,
                ceiling: false,
                note: leak(note),
            });
        }
    }
    peers
}

/// The TLS comparison's servers: the reactor's http_server and echo_server
/// with a certificate, nginx with `listen ... ssl` for HTTPS, and for the
/// TLS echo the strongest terminators this machine has in front of the C
/// echo server (nginx's stream module, stunnel). Those add a proxy hop (two
/// processes, a second socket per connection, a copy through loopback) that
/// the reactor does not have: they are the nearest peers that exist, not
/// equals. Left out, with a note, where a program is missing.
fn tls_peers(c_echo: Option<PathBuf>) -> Vec<Peer> {
    let mut peers = Vec::new();
    if has_program("ab") || has_program("wrk") {
        peers.push(Peer {
            name: "reactor-https",
            protocol: Protocol::Https,
            launch: Launch::TlsExample("http_server"),
            is_project: true,
            ceiling: false,
            note: "examples/http_server.rs --tls-cert/--tls-key: this crate with rustls 0.23 (ring), one thread",
        });
        if has_program("nginx") {
            peers.push(Peer {
                name: "nginx-https",
                protocol: Protocol::Https,
                launch: Launch::NginxTls,
                is_project: false,
                ceiling: false,
                note: "nginx, bench/nginx-tls.conf: one worker, `listen ... ssl` on the same certificate, TLS 1.3, X25519, OpenSSL's defaults otherwise (session cache off, tickets on: the handshake client never resumes)",
            });
        } else {
            missing("load: nginx not installed; HTTPS has no peer");
        }
    } else {
        missing("load: neither wrk nor ab installed; skipping HTTPS");
    }
    peers.push(Peer {
        name: "reactor-tls",
        protocol: Protocol::TlsEcho,
        launch: Launch::TlsExample("echo_server"),
        is_project: true,
        ceiling: false,
        note: "examples/echo_server.rs --tls-cert/--tls-key: this crate with rustls 0.23 (ring), one thread",
    });
    let Some(backend) = c_echo else {
        eprintln!("load: no C echo server; TLS echo has no peer");
        return peers;
    };
    if let Some(module) = nginx_stream_module() {
        peers.push(Peer {
            name: "nginx-stream",
            protocol: Protocol::TlsEcho,
            launch: Launch::NginxStream {
                module,
                backend: backend.clone(),
            },
            is_project: false,
            ceiling: false,
            note: "nginx stream module, bench/nginx-stream.conf: one worker terminates TLS (1.3, X25519) and proxies to bench/c/epoll_echo.c on the same CPU: a proxy hop more than the reactor (CPU counted for both processes)",
        });
    } else {
        missing("load: nginx has no stream module (Debian: libnginx-mod-stream); TLS echo without nginx");
    }
    if let Some(program) = find_program("stunnel4").or_else(|| find_program("stunnel")) {
        peers.push(Peer {
            name: "stunnel",
            protocol: Protocol::TlsEcho,
            launch: Launch::Stunnel { program, backend },
            is_project: false,
            ceiling: false,
            note: "stunnel (server mode, foreground) terminates TLS (1.3) in front of bench/c/epoll_echo.c on the same CPU: a proxy hop more than the reactor (CPU counted for both processes)",
        });
    } else {
        missing("load: stunnel not installed; TLS echo without stunnel");
    }
    peers
}

/// A TLS peer this machine lacks: a note on a developer's machine, a
/// failure under CI (`.ci/run` installs them all), where a row without its
/// peer must not pass for a comparison.
fn missing(note: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{note} (CI installs it: see .ci/run)"
    );
    eprintln!("{note}");
}

/// Whether nginx has the stream module: `Some(None)` built in,
/// `Some(Some(path))` as a dynamic module whose file exists (Debian's
/// libnginx-mod-stream), `None` neither (or no nginx).
fn nginx_stream_module() -> Option<Option<PathBuf>> {
    let nginx = find_program("nginx")?;
    let out = std::process::Command::new(nginx).arg("-V").output().ok()?;
    // nginx -V prints on stderr.
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let args: Vec<&str> = text.split_whitespace().collect();
    if args.contains(&"--with-stream") {
        return Some(None);
    }
    if !args.contains(&"--with-stream=dynamic") {
        return None;
    }
    let dirs = args
        .iter()
        .filter_map(|a| a.strip_prefix("--modules-path="))
        .map(PathBuf::from)
        .chain(["/usr/lib/nginx/modules", "/usr/share/nginx/modules"].map(PathBuf::from));
    dirs.map(|d| d.join("ngx_stream_module.so"))
        .find(|m| m.is_file())
        .map(Some)
}

/// Where `program` is: on the PATH, or in an sbin directory (nginx lives
/// in /usr/sbin, which a non-root PATH may lack).
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub(crate) fn has_program(program: &str) -> bool {
    find_program(program).is_some()
}
