//! ACLs (design 13.2): what an authenticated user may run and touch, in
//! Redis's rule language (the subset the issue names).
//!
//! Invariants kept here:
//! - **A rule string means what it means in Redis**: its rules apply left
//!   to right from nothing (off, no keys, no commands), as `ACL SETUSER`
//!   applies them to a new user, and categories are Redis's
//!   (`crate::commands`).
//! - **Every key needs one pattern that grants all it needs**: a key a
//!   command reads and writes needs a pattern with both permissions
//!   (Redis's rule), and every key of a request is checked, not only the
//!   first.
//! - **A rule not understood is refused at load**, never ignored (channel
//!   rules excepted: there are no channels, so they mean nothing).

use std::collections::{BTreeMap, BTreeSet};

use jubilant_core::txn::{KeyId, Mode, Op};

use crate::commands::{self, COMMANDS, Category, CommandSpec, Served};
use crate::resp::glob;
use crate::wire::Request;

/// What a command does with a key: the permission it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads it (its value, type, TTL or existence).
    Read,
    /// Changes it without answering its value.
    Write,
    /// Changes it and answers its value (`GETSET`, `INCR`, ...).
    ReadWrite,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The user may not run this command (its ACL name).
    Command(&'static str),
    /// The user may not touch this key so: the request's `index`-th key.
    Key {
        /// The command it was for.
        command: &'static str,
        /// Its position among the request's keys.
        index: usize,
        /// The key.
        key: Vec<u8>,
    },
}

impl Denied {
    /// The command refused and the key, if a key was (for the audit log).
    pub fn command_and_key(&self) -> (&'static str, Option<&[u8]>) {
        match self {
            Denied::Command(name) => (name, None),
            Denied::Key { command, key, .. } => (command, Some(key)),
        }
    }
}

/// A key pattern and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    read: bool,
    write: bool,
}

impl KeyPattern {
    fn rule(&self) -> String {
        let pattern = String::from_utf8_lossy(&self.pattern);
        match (self.read, self.write) {
            (true, true) => format!("~{pattern}"),
            (true, false) => format!("%R~{pattern}"),
            _ => format!("%W~{pattern}"),
        }
    }
}

/// One user's rules, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    enabled: bool,
    /// The ACL names of the commands allowed (`get`, `acl|whoami`).
    commands: BTreeSet<&'static str>,
    keys: Vec<KeyPattern>,
    /// The command rules in force, in order, as `ACL LIST` shows them.
    command_rules: Vec<String>,
    /// Broken on purpose (tests only): a request's second key is not
    /// checked.
    skip_second_key: bool,
}

/// The rules a user without an `acl` entry has: everything, as before
/// ACLs existed.
pub const EVERYTHING: &str = "on ~* +@all";

impl Acl {
    /// A user who may do nothing (`off`, no keys, no commands): where
    /// every rule string starts.
    pub fn nothing() -> Acl {
        Acl {
            enabled: false,
            commands: BTreeSet::new(),
            keys: Vec::new(),
            command_rules: Vec::new(),
            skip_second_key: false,
        }
    }

    /// `rules` parsed; the reason if one is not understood.
    pub fn parse(rules: &str) -> Result<Acl, String> {
        let mut acl = Acl::nothing();
        for rule in rules.split_ascii_whitespace() {
            acl.apply(rule)?;
        }
        Ok(acl)
    }

    /// Broken on purpose (tests only): the second key of every request
    /// goes unchecked.
    pub fn skipping_second_key(mut self) -> Acl {
        self.skip_second_key = true;
        self
    }

    fn apply(&mut self, rule: &str) -> Result<(), String> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "allkeys" => return self.apply("~*"),
            "resetkeys" => self.keys.clear(),
            "allcommands" => return self.apply("+@all"),
            "nocommands" => return self.apply("-@all"),
            "reset" => {
                *self = Acl {
                    skip_second_key: self.skip_second_key,
                    ..Acl::nothing()
                };
            }
            // There are no channels: their rules change nothing.
            "allchannels" | "resetchannels" => {}
            "nopass" | "resetpass" => {
                return Err(format!(
                    "{rule:?}: passwords come from password_hash, not from ACL rules"
                ));
            }
            _ => return self.apply_pattern_or_command(rule),
        }
        Ok(())
    }

    fn apply_pattern_or_command(&mut self, rule: &str) -> Result<(), String> {
        let first = rule.as_bytes().first().copied();
        match first {
            Some(b'~') => self.add_pattern(&rule[1..], true, true),
            Some(b'%') => {
                let Some((flags, pattern)) = rule[1..].split_once('~') else {
                    return Err(format!(
                        "{rule:?}: write %R~pattern, %W~pattern or %RW~pattern"
                    ));
                };
                let flags = flags.to_ascii_uppercase();
                let (read, write) = (flags.contains('R'), flags.contains('W'));
                if flags.is_empty() || flags.chars().any(|c| c != 'R' && c != 'W') {
                    return Err(format!("{rule:?}: the permissions of %...~ are R, W or RW"));
                }
                self.add_pattern(pattern, read, write)
            }
            Some(b'&') => Ok(()),
            Some(b'>' | b'<' | b'#' | b'!') => Err(format!(
                "{rule:?}: passwords come from password_hash, not from ACL rules"
            )),
            Some(b'(') => Err(format!("{rule:?}: selectors are not supported")),
            Some(sign @ (b'+' | b'-')) => {
                let allow = sign == b'+';
                let name = rule[1..].to_ascii_lowercase();
                let names = commands_named(&name)?;
                for spec in names {
                    if allow {
                        self.commands.insert(spec.name);
                    } else {
                        self.commands.remove(spec.name);
                    }
                }
                self.command_rules.push(format!("{}{name}", sign as char));
                Ok(())
            }
            _ => Err(format!("{rule:?} is not an ACL rule")),
        }
    }

    fn add_pattern(&mut self, pattern: &str, read: bool, write: bool) -> Result<(), String> {
        if pattern.is_empty() {
            return Err("an empty key pattern".to_owned());
        }
        self.keys.push(KeyPattern {
            pattern: pattern.as_bytes().to_vec(),
            read,
            write,
        });
        Ok(())
    }

    /// Whether the user may authenticate and run anything (`on`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the user may run `spec`.
    pub fn allows(&self, spec: &CommandSpec) -> bool {
        self.commands.contains(spec.name)
    }

    /// Whether one pattern lets the user touch `key` as `access` needs.
    pub fn allows_key(&self, key: &[u8], access: Access) -> bool {
        self.keys.iter().any(|pattern| {
            (pattern.read || !access.reads())
                && (pattern.write || !access.writes())
                && glob::matches(&pattern.pattern, key)
        })
    }

    /// Checks `spec` and then each key, in order.
    pub fn check<'k>(
        &self,
        spec: &'static CommandSpec,
        keys: impl IntoIterator<Item = (&'k [u8], Access)>,
    ) -> Result<(), Denied> {
        if !self.allows(spec) {
            return Err(Denied::Command(spec.name));
        }
        for (index, (key, access)) in keys.into_iter().enumerate() {
            if index == 1 && self.skip_second_key {
                continue;
            }
            if !self.allows_key(key, access) {
                return Err(Denied::Key {
                    command: spec.name,
                    index,
                    key: key.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Checks a request of several commands (a native transaction's
    /// ops), each with its key, in order: `(position, why)` for the first
    /// refused. An entry without a command is a key declared with no op:
    /// only its key is judged.
    pub fn check_each<'k>(
        &self,
        each: impl IntoIterator<Item = (Option<&'static CommandSpec>, &'k [u8], Access)>,
    ) -> Result<(), (usize, Denied)> {
        for (index, (spec, key, access)) in each.into_iter().enumerate() {
            if let Some(spec) = spec
                && !self.allows(spec)
            {
                return Err((index, Denied::Command(spec.name)));
            }
            if index == 1 && self.skip_second_key {
                continue;
            }
            if !self.allows_key(key, access) {
                let command = spec.map_or("", |spec| spec.name);
                let key = key.to_vec();
                return Err((
                    index,
                    Denied::Key {
                        command,
                        index,
                        key,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Checks a native request: a transaction op by op (each as the RESP
    /// command it corresponds to, then each key declared with no op, by
    /// its lock mode), anything else as its command. The op refused, if
    /// one was, and why.
    pub fn check_request(&self, request: &Request) -> Result<(), (Option<usize>, Denied)> {
        let Request::Txn(txn) = request else {
            return match commands::native_request(request) {
                Some(spec) if !self.allows(spec) => Err((None, Denied::Command(spec.name))),
                _ => Ok(()),
            };
        };
        // Linear in keys and ops: a transaction may have thousands.
        let declared: BTreeMap<KeyId, &[u8]> = txn
            .keys()
            .iter()
            .map(|(id, _, key)| (*id, key.as_slice()))
            .collect();
        let used: BTreeSet<KeyId> = txn.ops().iter().map(Op::key).collect();
        let ops = txn.ops().iter().map(|op| {
            let (spec, access) = commands::native_op(op);
            // An undeclared id is the engine's to refuse (UnknownKeyId).
            let key = declared.get(&op.key()).copied().unwrap_or_default();
            (Some(spec), key, access)
        });
        let unused = txn
            .keys()
            .iter()
            .filter(|(id, _, _)| !used.contains(id))
            .map(|(_, mode, key)| {
                let access = match mode {
                    Mode::R => Access::Read,
                    Mode::RW => Access::Write,
                };
                (None, key.as_slice(), access)
            });
        self.check_each(ops.chain(unused))
            .map_err(|(index, denied)| ((index < txn.ops().len()).then_some(index), denied))
    }

    /// The key rules, as `ACL GETUSER` shows them (`~app:* %R~pub:*`).
    pub fn key_rules(&self) -> String {
        let rules: Vec<String> = self.keys.iter().map(KeyPattern::rule).collect();
        rules.join(" ")
    }

    /// The command rules in force, as given (`+@all -@dangerous`).
    pub fn command_rules(&self) -> String {
        if self.command_rules.is_empty() {
            return "-@all".to_owned();
        }
        self.command_rules.join(" ")
    }

    /// The whole rule set, as `ACL LIST` shows it after `user NAME`.
    pub fn describe(&self) -> String {
        let mut parts = vec![if self.enabled { "on" } else { "off" }.to_owned()];
        let keys = self.key_rules();
        if !keys.is_empty() {
            parts.push(keys);
        }
        parts.push(self.command_rules());
        parts.join(" ")
    }
}

/// The commands `+name`/`-name` names: a category (`@read`, `@all`), a
/// command (every subcommand of a container), or one subcommand.
fn commands_named(name: &str) -> Result<Vec<&'static CommandSpec>, String> {
    let judged = || {
        COMMANDS
            .iter()
            .filter(|spec| !spec.categories.is_empty() || spec.served != Served::Resp)
    };
    if let Some(category) = name.strip_prefix('@') {
        if category == "all" {
            return Ok(judged().collect());
        }
        let Some(category) = Category::named(category) else {
            let known: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
            return Err(format!(
                "unknown ACL category @{category} (known: @all, @{})",
                known.join(", @")
            ));
        };
        return Ok(judged()
            .filter(|spec| spec.categories.contains(&category))
            .collect());
    }
    let found: Vec<&'static CommandSpec> = judged()
        .filter(|spec| {
            spec.name == name
                || spec
                    .name
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('|'))
        })
        .collect();
    if found.is_empty() {
        return Err(format!("unknown command {name:?} in an ACL rule"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::find;

    fn spec(name: &str) -> &'static CommandSpec {
        find(name).expect("a command")
    }

    #[test]
    fn rules_apply_left_to_right_from_nothing() {
        let acl = Acl::parse("on ~* +@all -@dangerous").expect("rules");
        assert!(acl.enabled());
        assert!(acl.allows(spec("get")) && acl.allows(spec("set")));
        assert!(!acl.allows(spec("flushall")), "@dangerous");
        assert!(!acl.allows(spec("keys")) && !acl.allows(spec("checkpoint")));
        let acl = Acl::parse("~* +@all -@dangerous +flushdb").expect("rules");
        assert!(!acl.enabled(), "a user starts off");
        assert!(acl.allows(spec("flushdb")) && !acl.allows(spec("flushall")));
        let acl = Acl::parse("on +@read -@all +get").expect("rules");
        assert!(acl.allows(spec("get")) && !acl.allows(spec("mget")));
        let none = Acl::parse("on").expect("rules");
        assert!(!none.allows(spec("ping")), "no commands until granted");
        assert_eq!(none.describe(), "on -@all");
        let reset = Acl::parse("on allkeys allcommands reset").expect("rules");
        assert_eq!(reset, Acl::parse("").expect("rules"));
    }

    #[test]
    fn a_container_rule_covers_its_subcommands_and_a_subcommand_rule_only_itself() {
        let acl = Acl::parse("on +acl -acl|list").expect("rules");
        assert!(acl.allows(spec("acl|whoami")) && acl.allows(spec("acl|users")));
        assert!(!acl.allows(spec("acl|list")));
        let acl = Acl::parse("on +@all -@admin").expect("rules");
        assert!(acl.allows(spec("acl|whoami")) && !acl.allows(spec("acl|getuser")));
    }

    #[test]
    fn every_key_needs_one_pattern_granting_all_it_needs() {
        let acl = Acl::parse("on +@all %R~pub:* %W~inbox:* ~app:*").expect("rules");
        assert!(acl.allows_key(b"pub:1", Access::Read));
        assert!(!acl.allows_key(b"pub:1", Access::Write));
        assert!(acl.allows_key(b"inbox:1", Access::Write));
        assert!(!acl.allows_key(b"inbox:1", Access::ReadWrite));
        assert!(acl.allows_key(b"app:1", Access::ReadWrite));
        assert!(!acl.allows_key(b"other", Access::Read));
        let two = Acl::parse("on +@all %R~k %W~k").expect("rules");
        assert!(
            !two.allows_key(b"k", Access::ReadWrite),
            "Redis's rule: one pattern must grant both"
        );
        let keys = [
            (&b"app:1"[..], Access::Write),
            (&b"other"[..], Access::Write),
        ];
        assert_eq!(
            acl.check(spec("mset"), keys),
            Err(Denied::Key {
                command: "mset",
                index: 1,
                key: b"other".to_vec()
            })
        );
        assert_eq!(
            acl.clone().skipping_second_key().check(spec("mset"), keys),
            Ok(())
        );
        assert_eq!(acl.key_rules(), "%R~pub:* %W~inbox:* ~app:*");
        let reset = Acl::parse("on ~a resetkeys allkeys").expect("rules");
        assert_eq!(reset.key_rules(), "~*");
    }

    #[test]
    fn rules_not_understood_are_refused_with_the_reason() {
        for (rules, says) in [
            ("on +@nosuch", "unknown ACL category"),
            ("on +nosuch", "unknown command"),
            ("on >secret", "password_hash"),
            ("on nopass", "password_hash"),
            ("on %X~k", "R, W or RW"),
            ("on (~k +get)", "selectors"),
            ("on ~", "empty key pattern"),
            ("on banana", "is not an ACL rule"),
        ] {
            let error = Acl::parse(rules).expect_err(rules);
            assert!(error.contains(says), "{rules}: {error}");
        }
        assert!(
            Acl::parse("on &* allchannels ~* +@all").is_ok(),
            "channels mean nothing"
        );
        assert_eq!(
            Acl::parse(EVERYTHING).expect("rules").describe(),
            "on ~* +@all"
        );
    }
}
