//! Starting the servers and what they are built from: the release
//! examples, the C peers (`cc -O2`), nginx and redis on a port picked here,
//! and the CPU placement (`taskset`).
//!
//! Every child process the bench starts, server or load tool, goes through
//! [`pinned_command`] (raised descriptor limit, pinned CPU, one PID) and is
//! held by a [`Guard`], so none outlives its run, even on an error path.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::peers::{find_program, Launch, Peer};
use crate::{bench_file, workspace_root, write_file, Paths};

/// Builds `examples` in release mode, from the workspace root so that they
/// land in the shared target directory: the reactor's (`examples/`) and
/// this package's peers (`bench/examples/`), each found in whichever of the
/// two packages has it. Cargo has released its lock on the target directory
/// by the time a bench runs, so this does not wait on the `cargo bench`
/// that started us; it is a no-op when up to date. Examples are named one by
/// one so a broken example elsewhere in the tree cannot stop the comparison.
pub(crate) fn build_examples(examples: &[&str]) -> Result<(), String> {
    cargo_build(&["-p", "reactor", "-p", "reactor-bench"], examples)
}

/// `cargo build --release` of `examples` with the package and feature
/// arguments `selection`, from the workspace root.
fn cargo_build(selection: &[&str], examples: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--release"];
    args.extend(selection);
    for example in examples {
        args.extend(["--example", example]);
    }
    eprintln!("load: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(&args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("cargo {} failed: {status}", args.join(" ")));
    }
    Ok(())
}

/// Builds the reactor's `examples` with `--features tls` and copies them
/// to `paths.tls_examples`: cargo puts a feature build where the plain one
/// goes (`release/examples/NAME`), so without the copy the plain rows would
/// run whichever was built last. The plain build that follows finds its
/// own artifacts still fresh (features are part of their hash).
pub(crate) fn build_tls_examples(paths: &Paths, examples: &[&str]) -> Result<(), String> {
    cargo_build(&["-p", "reactor", "--features", "tls"], examples)?;
    let dir = &paths.tls_examples;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for example in examples {
        let (from, to) = (paths.examples.join(example), dir.join(example));
        // Removed first: a running copy elsewhere cannot block the write.
        let _ = std::fs::remove_file(&to);
        std::fs::copy(&from, &to)
            .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Compiles the C peer `bench/c/NAME.c` to `load/NAME`; `None` (the peer
/// is skipped, with a note) if it does not compile or there is no compiler.
pub(crate) fn compile_c(paths: &Paths, name: &str) -> Option<PathBuf> {
    let source = bench_file(&format!("c/{name}.c"));
    let binary = paths.out.join(name);
    let result = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&binary)
        .arg(&source)
        .status();
    match result {
        Ok(status) if status.success() => Some(binary),
        Ok(status) => {
            eprintln!("load: cc {name}.c failed ({status}); skipping its peer");
            None
        }
        Err(e) => {
            eprintln!("load: no C compiler ({e}); skipping {name}");
            None
        }
    }
}

/// CPUs for (server, client), when pinning is possible.
pub(crate) fn placement() -> Option<(usize, usize)> {
    (cpu_count() >= 2 && has_taskset()).then_some((0, 1))
}

/// CPUs this process may run on (`available_parallelism`: affinity and
/// cgroup quota included); the placements number them from 0.
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether `taskset` runs here.
fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where one run's server and client go: `taskset -c` CPU lists (`None`:
/// not pinned) and loadgen's `--threads`.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    /// The server's CPUs.
    pub(crate) server: Option<String>,
    /// The load client's CPUs.
    pub(crate) client: Option<String>,
    /// loadgen `--threads` (the other tools run as they are).
    pub(crate) client_threads: usize,
    /// CPUs the server may use at most: the share of a CPU its `srv%` is
    /// judged saturated against (1 for every one-thread server).
    pub(crate) server_cpus: usize,
    /// Server and client share CPUs: msg/s then measures the machine, and
    /// only CPU per message compares the rows (see [`Placement::note`]).
    pub(crate) shared: bool,
}

impl Placement {
    /// The bench's usual placement: server on CPU 0 and client on CPU 1
    /// when `pin` says so (see [`placement`]), else neither pinned.
    pub(crate) fn single(pin: Option<(usize, usize)>) -> Placement {
        Placement {
            server: pin.map(|p| p.0.to_string()),
            client: pin.map(|p| p.1.to_string()),
            client_threads: 1,
            server_cpus: 1,
            shared: pin.is_none(),
        }
    }

    /// The many-loops rows (`threads-*`, issue 13): a server of `loops`
    /// loops gets CPUs 0..loops-1 and loadgen the rest, one thread per CPU.
    /// When the machine has no CPU left for the client (two CPUs and two
    /// loops), or taskset is missing, neither is pinned and they share.
    pub(crate) fn for_loops(loops: usize) -> Placement {
        let cpus = cpu_count();
        let range = |from: usize, to: usize| {
            if from == to {
                from.to_string()
            } else {
                format!("{from}-{to}")
            }
        };
        if loops < cpus && has_taskset() {
            Placement {
                server: Some(range(0, loops - 1)),
                client: Some(range(loops, cpus - 1)),
                client_threads: cpus - loops,
                server_cpus: loops,
                shared: false,
            }
        } else {
            Placement {
                server: None,
                client: None,
                client_threads: 1,
                server_cpus: loops.min(cpus),
                shared: true,
            }
        }
    }

    /// The placement in words, for a row's notes.
    pub(crate) fn note(&self) -> String {
        match (&self.server, &self.client) {
            (Some(s), Some(c)) if !self.shared => {
                let cpus = |list: &str| if list.contains('-') { "CPUs" } else { "CPU" };
                format!(
                    "server on {} {s}, loadgen --threads {} on {} {c}",
                    cpus(s),
                    self.client_threads,
                    cpus(c)
                )
            }
            _ => format!(
                "server and loadgen share this machine's {} CPUs (not pinned): compare CPU per message, not msg/s",
                cpu_count()
            ),
        }
    }
}

/// A child process killed (and reaped) when dropped.
pub(crate) struct Guard {
    /// The process; owned here alone, so it is stopped exactly once, by
    /// `drop` (a process that has already exited is just reaped).
    pub(crate) child: Child,
}

impl Drop for Guard {
    /// SIGTERM first, SIGKILL after two seconds: nginx's master stops its
    /// worker only when asked politely; killed outright, it leaves the
    /// worker running (and holding the port and a CPU).
    fn drop(&mut self) {
        let child = &mut self.child;
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `sh -c 'ulimit -n HARD; exec [taskset -c CPU] PROGRAM ARGS'`: raise the
/// soft descriptor limit to the hard one and pin, keeping one PID (every
/// step execs), so `/proc/PID` is the program's own.
pub(crate) fn pinned_command(program: &Path, args: &[String], cpu: Option<&str>) -> Command {
    let mut c = Command::new("sh");
    let pin = cpu.map_or(String::new(), |cpu| format!("taskset -c {cpu} "));
    c.arg("-c")
        .arg(format!(
            "ulimit -n $(ulimit -Hn) 2>/dev/null; exec {pin}\"$0\" \"$@\""
        ))
        .arg(program)
        .args(args);
    c
}

/// A started server: the process the load goes to and, for a TLS
/// terminator in front of the C echo server, that backend too. Dropping it
/// stops the server first, then the backend.
pub(crate) struct Server {
    /// The server's (or terminator's) process, stopped when this is dropped.
    _guard: Guard,
    /// Its PID (nginx: the master; its worker is a child).
    pub(crate) pid: u32,
    /// Where it listens, `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// Its stderr, line by line, after the "listening on" line: held so
    /// that the thread reading the pipe keeps reading (with the receiver
    /// gone it would stop, and a chatty server would block on a full pipe).
    _log: mpsc::Receiver<String>,
    /// The plain server behind a TLS terminator, and its PID.
    pub(crate) backend: Option<(Guard, u32)>,
}

impl Server {
    /// Every process whose CPU is the server's: its own (with children,
    /// see [`tree_cpu_seconds`](crate::procfs::tree_cpu_seconds)) and the
    /// backend's.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        pids.extend(self.backend.as_ref().map(|b| b.1));
        pids
    }
}

impl Server {
    /// Stops the server (as dropping it does) and returns what it printed
    /// on stderr after its "listening on" line, up to its exit: the
    /// per-loop lines of `echo_server --threads N`, for one.
    pub(crate) fn finish(self) -> Vec<String> {
        let Server {
            _guard: guard,
            _log: log,
            backend,
            ..
        } = self;
        drop(guard);
        drop(backend);
        // The reader thread ends, dropping its sender, once the pipe closes.
        let mut lines = Vec::new();
        while let Ok(line) = log.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        lines
    }
}

/// The bytes each loop read, from `echo_server --threads N`'s exit lines
/// ("echo_server loop I: C connections, D data calls, B bytes in"), in
/// loop order; empty when it printed none (one loop prints none).
pub(crate) fn loop_bytes(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.contains(" loop ") && l.ends_with(" bytes in"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.get(words.len().checked_sub(3)?)?.parse().ok()
        })
        .collect()
}

/// The run's certificate files (see [`TlsFiles::generate`]).
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    /// The temporary directory holding them, removed by [`TlsFiles::remove`].
    pub(crate) dir: PathBuf,
    /// Self-signed certificate, PEM.
    pub(crate) cert: PathBuf,
    /// Its private key, PEM (PKCS#8).
    pub(crate) key: PathBuf,
}

impl TlsFiles {
    /// An ECDSA P-256 certificate for `localhost` and 127.0.0.1, valid two
    /// days, made with `openssl req` in a fresh temporary directory: the
    /// bench commits nothing secret. Fails when openssl is missing.
    pub(crate) fn generate() -> Result<TlsFiles, String> {
        let dir = std::env::temp_dir().join(format!("reactor-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-days",
                "2",
                "-keyout",
            ])
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(files),
            Ok(o) => {
                files.remove();
                Err(format!(
                    "openssl req failed ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => {
                files.remove();
                Err(format!("cannot run openssl: {e}"))
            }
        }
    }

    /// Removes the directory and the key in it.
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fills a config template of `bench/` (`@NAME@` markers), writes it to
/// `dir/NAME` and returns that path.
fn config_from(template: &str, dir: &Path, vars: &[(&str, String)]) -> Result<PathBuf, String> {
    let source = bench_file(template);
    let mut text =
        std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    let path = dir.join(Path::new(template).file_name().unwrap_or_default());
    write_file(&path, &text)?;
    Ok(path)
}

/// The run's certificate, or why a TLS peer cannot start without one.
fn tls_files(paths: &Paths) -> Result<&TlsFiles, String> {
    paths
        .tls
        .as_ref()
        .ok_or_else(|| "no certificate for TLS peers".to_string())
}

/// Starts `peer`'s server (and the backend of a TLS terminator) and waits
/// for its address.
pub(crate) fn start_server(
    paths: &Paths,
    peer: &Peer,
    cpu: Option<&str>,
) -> Result<Server, String> {
    let listen_anywhere = || vec!["--addr".to_string(), "127.0.0.1:0".to_string()];
    let nginx_prefix = |dir: &str| -> Result<PathBuf, String> {
        let prefix = paths.out.join(dir);
        std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        Ok(prefix)
    };
    let nginx_args = |prefix: &Path, conf: &Path| {
        vec![
            "-p".to_string(),
            prefix.display().to_string(),
            "-c".to_string(),
            conf.display().to_string(),
        ]
    };
    let nginx = || find_program("nginx").unwrap_or_else(|| "nginx".into());
    // nginx with `bench/NAME.conf` under `out/NAME`, on a port picked here:
    // `vars` fill the template's markers beside `PORT` and `PREFIX`.
    let nginx_from = |name: &str, vars: Vec<(&str, String)>| {
        let port = free_port()?;
        let prefix = nginx_prefix(name)?;
        let mut all = vec![
            ("PORT", port.to_string()),
            ("PREFIX", prefix.display().to_string()),
        ];
        all.extend(vars);
        let conf = config_from(&format!("{name}.conf"), &prefix, &all)?;
        Ok::<_, String>((nginx(), nginx_args(&prefix, &conf), Some(port)))
    };
    let mut backend = None;
    let (program, args, fixed) = match &peer.launch {
        Launch::Example(name) => (paths.examples.join(name), listen_anywhere(), None),
        Launch::Loops { loops, hand_off } => {
            let mut args = listen_anywhere();
            args.extend(["--threads".to_string(), loops.to_string()]);
            if *hand_off {
                args.push("--hand-off".to_string());
            }
            (paths.examples.join("echo_server"), args, None)
        }
        Launch::Command(path) => (path.clone(), listen_anywhere(), None),
        Launch::TlsExample(name) => {
            let tls = tls_files(paths)?;
            let mut args = listen_anywhere();
            args.extend([
                "--tls-cert".to_string(),
                tls.cert.display().to_string(),
                "--tls-key".to_string(),
                tls.key.display().to_string(),
            ]);
            (paths.tls_examples.join(name), args, None)
        }
        Launch::Nginx => nginx_from("nginx", Vec::new())?,
        Launch::NginxTls => {
            let tls = tls_files(paths)?;
            nginx_from(
                "nginx-tls",
                vec![
                    ("CERT", tls.cert.display().to_string()),
                    ("KEY", tls.key.display().to_string()),
                ],
            )?
        }
        Launch::NginxStream {
            module,
            backend: plain,
        } => {
            let tls = tls_files(paths)?;
            let (guard, pid, addr, _) =
                spawn(plain, &listen_anywhere(), cpu, None, "C echo backend")?;
            backend = Some((guard, pid));
            let load_module = module
                .as_ref()
                .map_or(String::new(), |m| format!("load_module {};", m.display()));
            nginx_from(
                "nginx-stream",
                vec![
                    ("LOAD_MODULE", load_module),
                    ("CERT", tls.cert.display().to_string()),
                    ("KEY", tls.key.display().to_string()),
                    ("BACKEND", addr),
                ],
            )?
        }
        Launch::Stunnel {
            program,
            backend: plain,
        } => {
            let tls = tls_files(paths)?;
            let (guard, pid, addr, _) =
                spawn(plain, &listen_anywhere(), cpu, None, "C echo backend")?;
            backend = Some((guard, pid));
            let port = free_port()?;
            let dir = nginx_prefix("stunnel")?;
            // Foreground, no PID file, errors only; TLS 1.3 and X25519 as
            // for nginx; TCP_NODELAY on both sides, as every server here.
            let conf = format!(
                "foreground = yes\npid =\ndebug = err\n\n[echo]\naccept = 127.0.0.1:{port}\nconnect = {addr}\ncert = {}\nkey = {}\nsslVersionMin = TLSv1.3\ncurves = X25519\nsocket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n",
                tls.cert.display(),
                tls.key.display()
            );
            let path = dir.join("stunnel.conf");
            write_file(&path, &conf)?;
            (
                program.clone(),
                vec![path.display().to_string()],
                Some(port),
            )
        }
        Launch::Redis => {
            let port = free_port()?;
            let args = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--maxclients",
                "10000",
                "--logfile",
                "",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let redis = find_program("redis-server").unwrap_or_else(|| "redis-server".into());
            (redis, args, Some(port))
        }
    };
    let (guard, pid, addr, log) = spawn(&program, &args, cpu, fixed, peer.name)?;
    Ok(Server {
        _guard: guard,
        pid,
        addr,
        _log: log,
        backend,
    })
}

/// Starts `program` pinned to `cpu` and waits until it listens: on the
/// `fixed` port (it is polled until it accepts), or else where its
/// "listening on ADDR" line on stderr says. `name` is for errors.
fn spawn(
    program: &Path,
    args: &[String],
    cpu: Option<&str>,
    fixed: Option<u16>,
    name: &str,
) -> Result<(Guard, u32, String, mpsc::Receiver<String>), String> {
    let mut child = pinned_command(program, args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("piped");
    let mut guard = Guard { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(port) = fixed {
        // Peers that print no address: wait until the port accepts.
        let addr = format!("127.0.0.1:{port}");
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{name} did not listen on {addr}"));
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                let said: Vec<String> = rx.try_iter().take(5).collect();
                return Err(format!("{name} exited ({status}): {said:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        return Ok((guard, pid, addr, rx));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|_| format!("{name} printed no 'listening on' line"))?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or("").to_string();
            return Ok((guard, pid, addr, rx));
        }
    }
}

/// A port free right now on 127.0.0.1, for servers that cannot take port 0
/// and report it. (Below the ephemeral range it would be safer, but any
/// fixed choice could be taken; asking the kernel is the reliable way.)
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// All of a child's stdout, read on a thread so that a load tool which
/// never finishes is given up on at `limit` rather than hanging the bench
/// (the caller's [`Guard`] then kills it). `tool` names it in the error.
pub(crate) fn read_stdout_within(
    mut stdout: ChildStdout,
    limit: Duration,
    tool: &str,
) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    rx.recv_timeout(limit)
        .map_err(|_| format!("{tool} did not finish within {limit:?}"))
}
