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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--release", "-p", "reactor", "-p", "reactor-bench"];
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
        return Err(format!("building {examples:?} failed: {status}"));
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (cpus >= 2 && taskset).then_some((0, 1))
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
pub(crate) fn pinned_command(program: &Path, args: &[String], cpu: Option<usize>) -> Command {
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

/// Starts `peer`'s server and waits for its address.
pub(crate) fn start_server(
    paths: &Paths,
    peer: &Peer,
    cpu: Option<usize>,
) -> Result<(Guard, u32, String, mpsc::Receiver<String>), String> {
    let (program, args, fixed) = match &peer.launch {
        Launch::Example(name) => (paths.examples.join(name), vec![], None),
        Launch::Command(path) => (path.clone(), vec![], None),
        Launch::Nginx => {
            let port = free_port()?;
            let prefix = paths.out.join("nginx");
            std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
            let template = bench_file("nginx.conf");
            let conf = std::fs::read_to_string(&template)
                .map_err(|e| format!("{}: {e}", template.display()))?
                .replace("@PORT@", &port.to_string())
                .replace("@PREFIX@", &prefix.display().to_string());
            write_file(&prefix.join("nginx.conf"), &conf)?;
            let args = vec![
                "-p".to_string(),
                prefix.display().to_string(),
                "-c".to_string(),
                prefix.join("nginx.conf").display().to_string(),
            ];
            let nginx = find_program("nginx").unwrap_or_else(|| "nginx".into());
            (nginx, args, Some(port))
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
    let args = if fixed.is_some() {
        args
    } else {
        vec!["--addr".to_string(), "127.0.0.1:0".to_string()]
    };
    let mut child = pinned_command(&program, &args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("piped");
    let guard = Guard { child };
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
                return Err(format!("{} did not listen on {addr}", peer.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        return Ok((guard, pid, addr, rx));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|_| format!("{} printed no 'listening on' line", peer.name))?;
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
