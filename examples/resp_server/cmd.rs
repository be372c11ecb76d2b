//! The command table of the `resp_server` example: which commands exist,
//! their names and arities, what a subscribed connection may run, and
//! Redis's order of checks before a command runs.
//!
//! Kept apart from the commands' bodies (`commands.rs`) so that the errors
//! a client gets for a command it may not run come from one place, in the
//! order Redis reports them.

use crate::replies::Replies;
use crate::reply::{error, unknown_command, wrong_arity};

/// Declares [`Cmd`] and its table (name as Redis's errors spell it, and
/// Redis's arity) from one list, so the three cannot disagree.
macro_rules! commands {
    ($($variant:ident $name:literal $arity:literal,)*) => {
        /// The commands `RespServer::execute` knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Cmd {
            $($variant,)*
        }

        impl Cmd {
            /// Every command, for COMMAND COUNT.
            pub const ALL: &'static [Cmd] = &[$(Cmd::$variant,)*];

            /// The command named `name` (lower case). A match, not a
            /// search of `ALL`: this runs for every command, and the
            /// compiler turns it into a few comparisons.
            fn lookup(name: &str) -> Option<Cmd> {
                Some(match name {
                    $($name => Cmd::$variant,)*
                    _ => return None,
                })
            }

            /// The name, as Redis's error messages spell it.
            fn name(self) -> &'static str {
                match self {
                    $(Cmd::$variant => $name,)*
                }
            }

            /// Redis's arity: `n > 0`, exactly n words (the name
            /// included); `n < 0`, at least -n.
            fn arity(self) -> i64 {
                match self {
                    $(Cmd::$variant => $arity,)*
                }
            }
        }
    };
}

commands! {
    Ping "ping" -1,
    Echo "echo" 2,
    Get "get" 2,
    Set "set" -3,
    Del "del" -2,
    Exists "exists" -2,
    Incr "incr" 2,
    Incrby "incrby" 3,
    Decr "decr" 2,
    Decrby "decrby" 3,
    Append "append" 3,
    Strlen "strlen" 2,
    Mget "mget" -2,
    Mset "mset" -3,
    Setnx "setnx" 3,
    Getset "getset" 3,
    Getdel "getdel" 2,
    Expire "expire" -3,
    Pexpire "pexpire" -3,
    Ttl "ttl" 2,
    Pttl "pttl" 2,
    Persist "persist" 2,
    Type "type" 2,
    Keys "keys" 2,
    Dbsize "dbsize" 1,
    Flushdb "flushdb" -1,
    Info "info" -1,
    Quit "quit" -1,
    Hello "hello" -1,
    Client "client" -2,
    Config "config" -2,
    Command "command" -1,
    Slowlog "slowlog" -2,
    Latency "latency" -2,
    Subscribe "subscribe" -2,
    Unsubscribe "unsubscribe" -1,
    Psubscribe "psubscribe" -2,
    Punsubscribe "punsubscribe" -1,
    Publish "publish" 3,
    Reset "reset" 1,
    Multi "multi" 1,
    Exec "exec" 1,
    Discard "discard" 1,
    Watch "watch" -2,
    Unwatch "unwatch" 1,
}

impl Cmd {
    /// The command `argv` (name first) names, if it may run now; otherwise
    /// `None`, with the error Redis gives written to `r`. Redis's order of
    /// checks: unknown command, arity, then the subscribed context, which
    /// restricts only RESP2 connections (`restricted`).
    pub fn admit(r: &mut Replies<'_, '_>, argv: &[&[u8]], restricted: bool) -> Option<Cmd> {
        let argc = argv.len();
        let arg = |i: usize| argv[i];
        let name = arg(0);
        let Some(cmd) = Cmd::named(name) else {
            unknown_command(r.buf(), name, (1..argc).map(arg));
            return None;
        };
        let arity = cmd.arity();
        if (arity > 0 && argc as i64 != arity) || (arity < 0 && (argc as i64) < -arity) {
            wrong_arity(r.buf(), cmd.name());
            return None;
        }
        if restricted && !cmd.allowed_when_subscribed() {
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

    /// Redis's full name of this command with arguments `args`: the
    /// command's name, or `name|sub` for a subcommand this server knows
    /// (CLIENT LIST's `cmd=`). Static strings: it is recorded for every
    /// command, so it must not allocate.
    pub fn full_name(self, args: &[&[u8]]) -> &'static str {
        let name = self.name();
        let Some(sub) = args.first() else {
            return name;
        };
        SUBCOMMANDS
            .iter()
            .find(|full| {
                full.split_once('|')
                    .is_some_and(|(c, s)| c == name && sub.eq_ignore_ascii_case(s.as_bytes()))
            })
            .copied()
            .unwrap_or(name)
    }

    /// The command called `name`, in any case.
    fn named(name: &[u8]) -> Option<Cmd> {
        // Matched through a small stack buffer: no allocation per command.
        let mut buf = [0u8; 16];
        let lower = buf.get_mut(..name.len())?;
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        Cmd::lookup(std::str::from_utf8(lower).ok()?)
    }

    /// What a subscribed connection (RESP2) may run.
    fn allowed_when_subscribed(self) -> bool {
        matches!(
            self,
            Cmd::Ping
                | Cmd::Quit
                | Cmd::Subscribe
                | Cmd::Unsubscribe
                | Cmd::Psubscribe
                | Cmd::Punsubscribe
                | Cmd::Reset
        )
    }
}

/// The subcommands the server answers, by Redis's full names.
const SUBCOMMANDS: &[&str] = &[
    "client|id",
    "client|getname",
    "client|setname",
    "client|setinfo",
    "client|list",
    "client|info",
    "client|kill",
    "config|get",
    "command|docs",
    "command|info",
    "command|count",
    "slowlog|get",
    "slowlog|len",
    "slowlog|reset",
    "latency|latest",
    "latency|reset",
];

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
        (Cmd::Slowlog | Cmd::Latency, _) => return Some(cmd.full_name(args).into()),
        (Cmd::Client, [sub, rest @ ..]) => {
            let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
            let fits = match sub.as_str() {
                "id" | "getname" | "info" => rest.is_empty(),
                "setname" => rest.len() == 1,
                "setinfo" => rest.len() == 2,
                "list" => true,
                "kill" => !rest.is_empty(),
                _ => false,
            };
            return fits.then(|| format!("client|{sub}"));
        }
        _ => return Some(cmd.name().into()),
    };
    Some(format!("{}|{sub}", cmd.name()))
}
