//! The command table of the `resp_server` example: which commands exist,
//! their names and arities, what a subscribed connection may run, and
//! Redis's order of checks before a command runs.
//!
//! Kept apart from the commands' bodies (`commands.rs`) so that the errors
//! a client gets for a command it may not run come from one place, in the
//! order Redis reports them.

use crate::parse::Parser;
use crate::replies::Replies;
use crate::reply::{error, unknown_command, wrong_arity};

/// The commands `RespServer::execute` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Ping,
    Echo,
    Get,
    Set,
    Del,
    Exists,
    Incr,
    Mget,
    Quit,
    Config,
    Command,
    Subscribe,
    Unsubscribe,
    Publish,
    Reset,
}

impl Cmd {
    /// Every command, for COMMAND COUNT.
    pub const ALL: [Cmd; 15] = [
        Cmd::Ping,
        Cmd::Echo,
        Cmd::Get,
        Cmd::Set,
        Cmd::Del,
        Cmd::Exists,
        Cmd::Incr,
        Cmd::Mget,
        Cmd::Quit,
        Cmd::Config,
        Cmd::Command,
        Cmd::Subscribe,
        Cmd::Unsubscribe,
        Cmd::Publish,
        Cmd::Reset,
    ];

    /// The command `parser` parsed out of `frame`, if it may run now;
    /// otherwise `None`, with the error Redis gives written to `r`. Redis's
    /// order of checks: unknown command, arity, then the subscribed
    /// context.
    pub fn admit(
        r: &mut Replies<'_, '_>,
        parser: &Parser,
        frame: &[u8],
        subscribed: bool,
    ) -> Option<Cmd> {
        let argc = parser.argc();
        let arg = |i: usize| parser.arg(frame, i);
        let name = arg(0);
        let Some(cmd) = Cmd::named(name) else {
            unknown_command(r.buf(), name, (1..argc).map(|i| arg(i).to_vec()));
            return None;
        };
        let arity = cmd.arity();
        if (arity > 0 && argc as i64 != arity) || (arity < 0 && (argc as i64) < -arity) {
            wrong_arity(r.buf(), cmd.name());
            return None;
        }
        if subscribed && !cmd.allowed_when_subscribed() {
            let args: Vec<&[u8]> = (1..argc).map(arg).collect();
            if let Some(shown) = full_name(cmd, &args) {
                error(
                    r.buf(),
                    &format!(
                        "ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / \
                         (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                    ),
                );
                return None;
            }
        }
        Some(cmd)
    }

    /// The command called `name`, in any case.
    fn named(name: &[u8]) -> Option<Cmd> {
        // Matched through a small stack buffer: no allocation per command.
        let mut buf = [0u8; 16];
        let lower = buf.get_mut(..name.len())?;
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        Cmd::lookup(lower)
    }

    /// The command named `name` (lower case).
    fn lookup(name: &[u8]) -> Option<Cmd> {
        // A match on the bytes, not a search of `ALL`: this runs for every
        // command, and the compiler turns it into a few comparisons.
        Some(match name {
            b"ping" => Cmd::Ping,
            b"echo" => Cmd::Echo,
            b"get" => Cmd::Get,
            b"set" => Cmd::Set,
            b"del" => Cmd::Del,
            b"exists" => Cmd::Exists,
            b"incr" => Cmd::Incr,
            b"mget" => Cmd::Mget,
            b"quit" => Cmd::Quit,
            b"config" => Cmd::Config,
            b"command" => Cmd::Command,
            b"subscribe" => Cmd::Subscribe,
            b"unsubscribe" => Cmd::Unsubscribe,
            b"publish" => Cmd::Publish,
            b"reset" => Cmd::Reset,
            _ => return None,
        })
    }

    /// The name, as Redis's error messages spell it.
    fn name(self) -> &'static str {
        match self {
            Cmd::Ping => "ping",
            Cmd::Echo => "echo",
            Cmd::Get => "get",
            Cmd::Set => "set",
            Cmd::Del => "del",
            Cmd::Exists => "exists",
            Cmd::Incr => "incr",
            Cmd::Mget => "mget",
            Cmd::Quit => "quit",
            Cmd::Config => "config",
            Cmd::Command => "command",
            Cmd::Subscribe => "subscribe",
            Cmd::Unsubscribe => "unsubscribe",
            Cmd::Publish => "publish",
            Cmd::Reset => "reset",
        }
    }

    /// Redis's arity: `n > 0`, exactly n words (the name included);
    /// `n < 0`, at least -n.
    fn arity(self) -> i64 {
        match self {
            Cmd::Ping | Cmd::Quit | Cmd::Command | Cmd::Unsubscribe => -1,
            Cmd::Echo | Cmd::Get | Cmd::Incr => 2,
            Cmd::Set => -3,
            Cmd::Del | Cmd::Exists | Cmd::Mget | Cmd::Config | Cmd::Subscribe => -2,
            Cmd::Publish => 3,
            Cmd::Reset => 1,
        }
    }

    /// What a subscribed connection (RESP2) may run.
    fn allowed_when_subscribed(self) -> bool {
        matches!(
            self,
            Cmd::Ping | Cmd::Quit | Cmd::Subscribe | Cmd::Unsubscribe | Cmd::Reset
        )
    }
}

/// The name Redis shows for a command in the subscribed-mode error:
/// `config|get` for a subcommand. `None` when the subcommand is unknown or
/// has the wrong arity, errors Redis reports before that one (and which the
/// command itself produces here).
fn full_name(cmd: Cmd, args: &[&[u8]]) -> Option<String> {
    let sub = match (cmd, args) {
        (Cmd::Config, [sub, _, ..]) if sub.eq_ignore_ascii_case(b"get") => "get",
        (Cmd::Config, _) => return None,
        (Cmd::Command, []) => return Some("command".into()),
        (Cmd::Command, [sub, ..]) if sub.eq_ignore_ascii_case(b"docs") => "docs",
        (Cmd::Command, [sub, ..]) if sub.eq_ignore_ascii_case(b"info") => "info",
        (Cmd::Command, [sub]) if sub.eq_ignore_ascii_case(b"count") => "count",
        (Cmd::Command, _) => return None,
        _ => return Some(cmd.name().into()),
    };
    Some(format!("{}|{sub}", cmd.name()))
}
