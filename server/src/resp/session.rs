//! One RESP connection's state: its protocol version, name, durability
//! class, a `MULTI` block being queued and the keys it `WATCH`es. Commands
//! that only touch this state are answered here at once; the rest are
//! handed back as work for the database.
//!
//! Invariants kept here, as Redis keeps them:
//! - **A block is all or nothing.** A command refused while queueing (bad
//!   arguments, unknown, denied by an ACL) makes `EXEC` answer `EXECABORT`
//!   and run nothing; a command the user's rules deny by `EXEC` (a reload
//!   changed them) makes `EXEC` answer `NOPERM` and run nothing.
//! - **An ACL judges a command and all its keys before it is queued or
//!   run** (design 13.2); only `AUTH`, `HELLO` and `QUIT` need no rule.
//! - **`EXEC` and `DISCARD` end the block and forget every watch**, as do
//!   `UNWATCH` and a connection's end.

use jubilant_core::db::Durability;

use super::command::{Command, DataCommand, DurabilityArg, parse};
use super::reply::Reply;
use crate::acl::{Access, Acl, Denied};
use crate::commands::{self, CommandSpec};

/// Redis's answer to `AUTH` when no password is set, word for word:
/// clients (redis-py) recognize it as an authentication error.
const NO_PASSWORD: &str = "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// Redis's answer to a `HELLO` without `AUTH` before authenticating.
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// Keys one connection may watch at once.
pub const WATCHED_MAX: usize = 1024;

/// What the connection must do for a command.
#[derive(Debug)]
pub enum Action {
    /// Answer this.
    Reply(Reply),
    /// Answer this, then close (`QUIT`, or lost framing).
    Close(Reply),
    /// Run one command on keys.
    Data(DataCommand),
    /// Run a `MULTI` block: its entries (a command on keys, or a reply
    /// already known for `PING`/`ECHO`), checking `watched`.
    Exec {
        /// The queued entries, in order.
        entries: Vec<Result<DataCommand, Reply>>,
        /// Keys and the revisions `WATCH` saw.
        watched: Vec<(Vec<u8>, u64)>,
    },
    /// Read these keys' revisions, then [`Session::watched`] them.
    Watch(Vec<Vec<u8>>),
    /// A command on the whole keyspace or the server.
    Server(Command),
    /// Verify a password (`AUTH`, `HELLO ... AUTH`); on success call
    /// [`Session::authenticated`], and for a `HELLO` answer
    /// [`Session::hello_as`].
    Auth {
        /// The user.
        user: String,
        /// The password.
        password: Vec<u8>,
        /// `HELLO`'s protocol version and name, if it came with one.
        hello: Option<(Option<i64>, Option<Vec<u8>>)>,
    },
    /// Refused: the connection has not authenticated (counted, then
    /// answered).
    NoAuth(Reply),
    /// Refused by the user's ACL (counted and audited, then answered
    /// `NOPERM`).
    Denied(Denied),
}

/// Redis's answer to a denial, word for word.
pub fn noperm(user: &str, denied: &Denied) -> Reply {
    match denied {
        Denied::Command(name) => Reply::Error(format!(
            "NOPERM User {user} has no permissions to run the '{name}' command"
        )),
        Denied::Key { .. } => Reply::Error("NOPERM No permissions to access a key".into()),
    }
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    /// The connection's id (`CLIENT ID`).
    pub id: u64,
    /// Whether replies are RESP3 (after `HELLO 3`).
    pub resp3: bool,
    /// `CLIENT SETNAME`.
    pub name: Option<Vec<u8>>,
    /// `JUBILANT.DURABILITY` (`None`: the server's default).
    pub durability: Option<Durability>,
    /// The block being queued, and whether a command of it was refused.
    multi: Option<(Vec<Result<DataCommand, Reply>>, bool)>,
    /// The ACL entry of each queued command, checked again at `EXEC`.
    queued_specs: Vec<&'static CommandSpec>,
    watched: Vec<(Vec<u8>, u64)>,
    /// Whether users are configured, so commands need a user.
    auth_required: bool,
    /// The user the connection authenticated as.
    pub user: Option<String>,
}

impl Session {
    /// A new connection's state; with `auth_required`, only `PING`,
    /// `HELLO`, `AUTH` and `QUIT` are served until a password verifies.
    pub fn new(id: u64, auth_required: bool) -> Self {
        Session {
            id,
            resp3: false,
            name: None,
            durability: None,
            multi: None,
            queued_specs: Vec::new(),
            watched: Vec::new(),
            auth_required,
            user: None,
        }
    }

    /// The connection authenticated as `user`.
    pub fn authenticated(&mut self, user: String) {
        self.user = Some(user);
    }

    /// The connection's user was removed or turned `off` (a reload): it is
    /// unauthenticated from now on.
    pub fn forget_user(&mut self) {
        self.user = None;
    }

    /// Whether a `MULTI` block is being queued.
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Records what `WATCH` read.
    pub fn watched(&mut self, revisions: Vec<(Vec<u8>, u64)>) {
        for (key, revision) in revisions {
            // The first revision seen stands: the key must not change
            // from then on.
            if !self.watched.iter().any(|(watched, _)| *watched == key) {
                self.watched.push((key, revision));
            }
        }
    }

    /// What to do for a request's arguments. `acl` is the rules of the
    /// connection's user as they are now (`None`: no users are
    /// configured, or the connection has not authenticated).
    pub fn handle(
        &mut self,
        args: Vec<Vec<u8>>,
        server_durability: Durability,
        acl: Option<&Acl>,
    ) -> Action {
        // Only an ACL needs the command's entry: an open server does not
        // pay for the lookup on every command.
        let spec = acl.and_then(|_| commands::named_by(&args));
        let command = match parse(args) {
            Ok(command) => command,
            Err(reply) => {
                if let Some((_, refused)) = &mut self.multi {
                    *refused = true;
                }
                return Action::Reply(reply);
            }
        };
        if self.auth_required && self.user.is_none() {
            match &command {
                Command::Ping(_)
                | Command::Quit
                | Command::Auth { .. }
                | Command::Hello { auth: Some(_), .. } => {}
                Command::Hello { auth: None, .. } => {
                    return Action::NoAuth(Reply::Error(HELLO_NOAUTH.into()));
                }
                _ => return Action::NoAuth(Reply::Error("NOAUTH Authentication required.".into())),
            }
        }
        if let Some(acl) = acl
            && let Err(denied) = judge(acl, spec, &command)
        {
            if let Some((_, refused)) = &mut self.multi {
                *refused = true;
            }
            return Action::Denied(denied);
        }
        if let Some((queued, refused)) = &mut self.multi {
            match command {
                Command::Exec => {}
                Command::Discard => {
                    self.multi = None;
                    self.queued_specs.clear();
                    self.watched.clear();
                    return Action::Reply(Reply::Ok);
                }
                Command::Multi => {
                    return Action::Reply(Reply::err("MULTI calls can not be nested"));
                }
                Command::Watch(_) => {
                    return Action::Reply(Reply::err("WATCH inside MULTI is not allowed"));
                }
                Command::Quit => return Action::Close(Reply::Ok),
                Command::Data(data) => {
                    queued.push(Ok(data));
                    self.queued_specs.extend(spec);
                    return Action::Reply(Reply::Status("QUEUED".into()));
                }
                Command::Ping(message) => {
                    queued.push(Err(pong(message)));
                    return Action::Reply(Reply::Status("QUEUED".into()));
                }
                Command::Echo(message) => {
                    queued.push(Err(Reply::Bulk(message)));
                    return Action::Reply(Reply::Status("QUEUED".into()));
                }
                _ => {
                    *refused = true;
                    return Action::Reply(Reply::err(
                        "this command cannot be queued in MULTI (only commands on keys, PING and ECHO)",
                    ));
                }
            }
        }
        match command {
            Command::Data(data) => Action::Data(data),
            Command::Ping(message) => Action::Reply(pong(message)),
            Command::Echo(message) => Action::Reply(Reply::Bulk(message)),
            Command::Hello {
                version,
                auth,
                name,
            } => {
                if !matches!(version, None | Some(2 | 3)) {
                    return Action::Reply(Reply::Error(
                        "NOPROTO unsupported protocol version".into(),
                    ));
                }
                match auth {
                    None => Action::Reply(self.hello_as(version, name)),
                    Some(_) if !self.auth_required => Action::Reply(Reply::err(NO_PASSWORD)),
                    Some((user, password)) => Action::Auth {
                        user: String::from_utf8_lossy(&user).into_owned(),
                        password,
                        hello: Some((version, name)),
                    },
                }
            }
            Command::Auth { .. } if !self.auth_required => Action::Reply(Reply::err(NO_PASSWORD)),
            Command::Auth { user, password } => Action::Auth {
                user: user.map_or_else(
                    || crate::auth::DEFAULT_USER.to_owned(),
                    |user| String::from_utf8_lossy(&user).into_owned(),
                ),
                password,
                hello: None,
            },
            Command::ClientSetName(name) => {
                if name.iter().any(|&b| b <= b' ' || b > b'~') {
                    return Action::Reply(Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    ));
                }
                self.name = (!name.is_empty()).then_some(name);
                Action::Reply(Reply::Ok)
            }
            Command::ClientGetName => Action::Reply(match &self.name {
                Some(name) => Reply::Bulk(name.clone()),
                None => Reply::Nil,
            }),
            Command::ClientId => Action::Reply(Reply::Int(self.id as i64)),
            Command::ClientSetInfo => Action::Reply(Reply::Ok),
            Command::Select(0) => Action::Reply(Reply::Ok),
            Command::Select(_) => Action::Reply(Reply::err("DB index is out of range")),
            Command::Quit => Action::Close(Reply::Ok),
            Command::Multi => {
                self.multi = Some((Vec::new(), false));
                self.queued_specs.clear();
                Action::Reply(Reply::Ok)
            }
            Command::Exec => match self.multi.take() {
                None => Action::Reply(Reply::err("EXEC without MULTI")),
                Some((entries, refused)) => {
                    let watched = std::mem::take(&mut self.watched);
                    let specs = std::mem::take(&mut self.queued_specs);
                    if refused {
                        return Action::Reply(Reply::Error(
                            "EXECABORT Transaction discarded because of previous errors.".into(),
                        ));
                    }
                    // The rules may have changed since a command was
                    // queued (a reload): the block runs whole or not.
                    if let Some(acl) = acl {
                        let data: Vec<&DataCommand> = entries
                            .iter()
                            .filter_map(|entry| entry.as_ref().ok())
                            .collect();
                        // Every command was queued under an ACL, so each
                        // has its entry; a block that has not is refused,
                        // never run unchecked.
                        if specs.len() != data.len() {
                            return Action::Denied(Denied::Command("exec"));
                        }
                        for (spec, data) in specs.into_iter().zip(data) {
                            if let Err(denied) = acl.check(spec, keys_of(data)) {
                                return Action::Denied(denied);
                            }
                        }
                    }
                    Action::Exec { entries, watched }
                }
            },
            Command::Discard => Action::Reply(Reply::err("DISCARD without MULTI")),
            Command::Watch(keys) => {
                if self.watched.len() + keys.len() > WATCHED_MAX {
                    return Action::Reply(Reply::err(format!(
                        "a connection watches at most {WATCHED_MAX} keys"
                    )));
                }
                Action::Watch(keys)
            }
            Command::Unwatch => {
                self.watched.clear();
                Action::Reply(Reply::Ok)
            }
            Command::Durability(arg) => {
                match arg {
                    DurabilityArg::Show => {}
                    DurabilityArg::Sync => self.durability = Some(Durability::Sync),
                    DurabilityArg::Async => self.durability = Some(Durability::Async),
                    DurabilityArg::Default => self.durability = None,
                }
                Action::Reply(Reply::Status(
                    durability_name(self.durability.unwrap_or(server_durability)).into(),
                ))
            }
            other => Action::Server(other),
        }
    }

    /// `HELLO`'s answer, after switching to protocol `version` (2 or 3,
    /// checked) and taking `name`.
    pub fn hello_as(&mut self, version: Option<i64>, name: Option<Vec<u8>>) -> Reply {
        match version {
            Some(3) => self.resp3 = true,
            Some(_) => self.resp3 = false,
            None => {}
        }
        if name.is_some() {
            self.name = name;
        }
        self.hello()
    }

    fn hello(&self) -> Reply {
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("jubilant")),
            (
                Reply::text("version"),
                Reply::text(env!("CARGO_PKG_VERSION")),
            ),
            (
                Reply::text("proto"),
                Reply::Int(if self.resp3 { 3 } else { 2 }),
            ),
            (Reply::text("id"), Reply::Int(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }
}

/// Whether `acl` lets `command` (named by `spec`) run, with every key.
/// `AUTH`, `HELLO` and `QUIT` need no rule, as in Redis.
fn judge(acl: &Acl, spec: Option<&'static CommandSpec>, command: &Command) -> Result<(), Denied> {
    if matches!(
        command,
        Command::Auth { .. } | Command::Hello { .. } | Command::Quit
    ) {
        return Ok(());
    }
    // Every command that parses has an entry (a test walks them); one
    // without would be denied, never let through.
    let Some(spec) = spec else {
        return Err(Denied::Command("unknown"));
    };
    match command {
        Command::Data(data) => acl.check(spec, keys_of(data)),
        Command::Watch(keys) => acl.check(spec, keys.iter().map(|k| (k.as_slice(), Access::Read))),
        _ => acl.check(spec, []),
    }
}

/// `data`'s keys with what it does to them.
fn keys_of(data: &DataCommand) -> impl Iterator<Item = (&[u8], Access)> {
    let access = data.access();
    data.keys().into_iter().map(move |key| (key, access))
}

/// `sync` or `async`.
pub fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Sync => "sync",
        Durability::Async => "async",
    }
}

fn pong(message: Option<Vec<u8>>) -> Reply {
    match message {
        Some(message) => Reply::Bulk(message),
        None => Reply::Status("PONG".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(session: &mut Session, line: &str) -> Action {
        let args = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        session.handle(args, Durability::Sync, None)
    }

    #[test]
    fn a_block_queues_runs_once_and_a_refused_command_aborts_it() {
        let mut session = Session::new(7, false);
        assert!(matches!(
            handle(&mut session, "MULTI"),
            Action::Reply(Reply::Ok)
        ));
        assert!(matches!(
            handle(&mut session, "SET k v"),
            Action::Reply(Reply::Status(_))
        ));
        assert!(matches!(
            handle(&mut session, "PING"),
            Action::Reply(Reply::Status(_))
        ));
        match handle(&mut session, "EXEC") {
            Action::Exec { entries, watched } => {
                assert_eq!(entries.len(), 2);
                assert!(watched.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(!session.in_multi());
        handle(&mut session, "MULTI");
        assert!(matches!(
            handle(&mut session, "GET"),
            Action::Reply(Reply::Error(_))
        ));
        assert!(matches!(
            handle(&mut session, "EXEC"),
            Action::Reply(Reply::Error(text)) if text.starts_with("EXECABORT")
        ));
        assert!(matches!(
            handle(&mut session, "EXEC"),
            Action::Reply(Reply::Error(_))
        ));
        assert!(matches!(
            handle(&mut session, "JUBILANT.DURABILITY async"),
            Action::Reply(Reply::Status(name)) if name == "async"
        ));
        assert_eq!(session.durability, Some(Durability::Async));
    }
}
