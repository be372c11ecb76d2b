//! The chat room's commands: one line from a member is either said to the
//! room (`name: text`, control and format characters made harmless by
//! `text.rs`) or a command: `/nick`
//! (with the rules a nickname must meet), `/who`, `/quit` and `/help`.
//!
//! Apart from `chat_server.rs`, which owns the room (who is in it, how a
//! line reaches every member, the slow-reader policy), because this is the
//! protocol spoken in it: the text a member types and the text it gets
//! back. The methods are on `ChatServer` and use its delivery helpers.

use std::fmt::Write as _;

use reactor::{ConnId, Context};

use crate::text::{is_refused_in_nick, nick_key, push_sanitised};
use crate::{ChatServer, Member, MAX_NICK};

/// `/who` starts a new line once a line of names reaches this length.
const WHO_LINE: usize = 900;
/// What `/help` answers.
pub(crate) const HELP: &str =
    "* commands: /nick NAME, /who, /quit, /help; anything else is said to the room";

impl ChatServer {
    /// One complete line from `conn`.
    pub(crate) fn on_line(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        me: &mut Member,
        line: &[u8],
    ) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        let Some(command) = line.strip_prefix(b"/") else {
            self.say(ctx, conn, me, line);
            return;
        };
        let (verb, arg) = match command.iter().position(u8::is_ascii_whitespace) {
            Some(space) => (&command[..space], command[space..].trim_ascii()),
            None => (command, &b""[..]),
        };
        match verb {
            b"nick" => self.nick(ctx, conn, me, arg),
            b"who" => self.who(ctx, conn, me),
            b"quit" => {
                self.reply(ctx, conn, me, "* bye");
                self.leave(ctx, me, None);
                ctx.close_after_flush(conn);
            }
            b"help" => self.reply(ctx, conn, me, HELP),
            _ => self.reply(ctx, conn, me, "error: unknown command (try /help)"),
        }
    }

    /// Relays `text` to the room as `nick: text`.
    fn say(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &Member, text: &[u8]) {
        self.text.clear();
        self.text.extend_from_slice(me.nick.as_bytes());
        self.text.extend_from_slice(b": ");
        // Control characters would let one member drive the others'
        // terminals (escape sequences, carriage returns rewriting the line),
        // format characters reorder or hide what they show (text.rs).
        push_sanitised(&mut self.text, text);
        self.frame();
        self.broadcast_wire(ctx, Some(conn));
        self.relay();
    }

    fn nick(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &mut Member, arg: &[u8]) {
        let nick = match check_nick(arg) {
            Ok(nick) => nick,
            Err(why) => return self.reply(ctx, conn, me, &format!("error: {why}")),
        };
        if nick == me.nick {
            return self.reply(ctx, conn, me, &format!("* you are already {nick}"));
        }
        // Taken by someone else, whatever the case (text.rs says what else
        // counts as the same name). The member's own key is free for it:
        // `bob` may become `Bob`.
        // With several loops the names are shared by all (nicks.rs).
        if !self.nicks.rename(&nick_key(&me.nick), nick_key(nick), conn) {
            return self.reply(ctx, conn, me, &format!("error: nickname {nick} is taken"));
        }
        let old = std::mem::replace(&mut me.nick, nick.to_owned());
        self.announce(ctx, None, &format!("* {old} is now {nick}"));
        self.relay();
    }

    /// Lists the room: `* N online: a, b, c`, continued on further lines
    /// when long.
    fn who(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &Member) {
        let mut names: Vec<&str> = self
            .members
            .iter()
            .filter(|(_, seat)| seat.conn != conn)
            .filter_map(|(_, seat)| ctx.state(seat.conn).map(|m| m.nick.as_str()))
            .collect();
        names.push(&me.nick);
        names.sort_unstable();
        let mut lines = Vec::new();
        let mut line = format!("* {} online: ", names.len());
        for (i, name) in names.iter().enumerate() {
            if line.len() + name.len() > WHO_LINE {
                lines.push(std::mem::replace(&mut line, "* ... ".to_owned()));
            } else if i > 0 {
                line.push_str(", ");
            }
            let _ = write!(line, "{name}");
        }
        lines.push(line);
        for line in lines {
            self.reply(ctx, conn, me, &line);
        }
    }
}

/// Checks a requested nickname; the error says what is wrong.
fn check_nick(arg: &[u8]) -> Result<&str, String> {
    if arg.is_empty() {
        return Err("usage: /nick NAME".into());
    }
    if arg.iter().any(u8::is_ascii_whitespace) {
        return Err("a nickname cannot contain spaces".into());
    }
    if arg.len() > MAX_NICK {
        return Err(format!("a nickname is at most {MAX_NICK} bytes"));
    }
    let nick = std::str::from_utf8(arg).map_err(|_| "a nickname must be UTF-8".to_string())?;
    // Invisible characters would let a name pass for another's (`bob` with
    // a zero-width space); text.rs lists them.
    if nick
        .chars()
        .any(|c| is_refused_in_nick(c) || c.is_whitespace() || c == ':')
    {
        return Err("a nickname cannot contain ':' or control characters".into());
    }
    Ok(nick)
}
