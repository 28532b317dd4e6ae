//! Redis's string commands as pure functions of the keys they read: a
//! [`View`] holds each key as one read transaction saw it, commands change
//! the view in order (answering as Redis would), and what changed becomes
//! the writes of one commit that asserts every key read is still as seen.
//!
//! Invariants kept here:
//! - **Redis's semantics, on our types.** A key's value reads as bytes: a
//!   String or Bytes value as itself, an Int64 as its decimal text. What
//!   the RESP listener writes is Bytes, except `INCR`'s family, which
//!   stores an Int64 (so the native `ADD` and `INCR` agree).
//! - **Expired is missing** (SPEC 3): a key whose expiry has passed by the
//!   view's clock reads as absent, and a write that makes one expire at
//!   once deletes it.

use std::collections::BTreeMap;

use jubilant_core::db::Value;

use super::command::{Condition, DataCommand, Expiry, SetTtl, parse_int};
use super::reply::Reply;

/// A key as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its value.
    pub value: Value,
    /// Unix ms it expires at, if it has a TTL.
    pub expires_at_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct Slot {
    /// The revision read (0: missing).
    revision: u64,
    current: Option<Entry>,
    dirty: bool,
}

/// The keys of one batch of commands, as read and as changed since.
#[derive(Clone, Debug)]
pub struct View {
    now_ms: u64,
    slots: BTreeMap<Vec<u8>, Slot>,
}

/// A write the view's changes come to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Set the key, with a TTL in ms from the commit, or none.
    Set(Value, Option<u64>),
    /// Delete the key.
    Del,
}

/// A value's bytes as Redis sees them.
pub fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::Bytes(bytes) => bytes.clone(),
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Int(n) => n.to_string().into_bytes(),
    }
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Bytes(bytes) => bytes.len(),
        Value::String(text) => text.len(),
        Value::Int(n) => n.to_string().len(),
    }
}

impl View {
    /// An empty view at `now_ms` (the read transaction's clock).
    pub fn new(now_ms: u64) -> Self {
        View {
            now_ms,
            slots: BTreeMap::new(),
        }
    }

    /// Records `key` as read: its revision (0: missing) and entry.
    pub fn read(&mut self, key: Vec<u8>, revision: u64, entry: Option<Entry>) {
        self.slots.insert(
            key,
            Slot {
                revision,
                current: entry,
                dirty: false,
            },
        );
    }

    /// Every key read, with the revision it was read at.
    pub fn revisions(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.slots
            .iter()
            .map(|(key, slot)| (key.as_slice(), slot.revision))
    }

    /// The changes to commit, by key: a key written and then put back the
    /// way it was is still written (its revision changes, as in Redis a
    /// write touches the key).
    pub fn changes(&self) -> Vec<(&[u8], Change)> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| {
                let change = match &slot.current {
                    None => Change::Del,
                    Some(entry) => match entry.expires_at_ms {
                        None => Change::Set(entry.value.clone(), None),
                        Some(at) if at > self.now_ms => {
                            Change::Set(entry.value.clone(), Some(at - self.now_ms))
                        }
                        Some(_) => Change::Del,
                    },
                };
                (key.as_slice(), change)
            })
            .collect()
    }

    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.slots.get(key).and_then(|slot| {
            slot.current
                .as_ref()
                .filter(|entry| entry.expires_at_ms.is_none_or(|at| at > self.now_ms))
        })
    }

    fn put(&mut self, key: &[u8], entry: Option<Entry>) {
        let slot = self
            .slots
            .get_mut(key)
            .expect("a command writes only keys it declared");
        slot.current = entry;
        slot.dirty = true;
    }

    fn at_ms(&self, expiry: Expiry) -> i64 {
        match expiry {
            Expiry::In(ms) => i64::try_from(self.now_ms)
                .unwrap_or(i64::MAX)
                .saturating_add(ms),
            Expiry::At(ms) => ms,
        }
    }

    /// Runs `command` on the view; returns its reply.
    pub fn apply(&mut self, command: &DataCommand) -> Reply {
        let bulk = |entry: Option<&Entry>| match entry {
            Some(entry) => Reply::Bulk(value_bytes(&entry.value)),
            None => Reply::Nil,
        };
        match command {
            DataCommand::Get(key) => bulk(self.get(key)),
            DataCommand::Set {
                key,
                value,
                condition,
                get,
                ttl,
            } => {
                let old = self.get(key).cloned();
                let skip = match condition {
                    Condition::Nx => old.is_some(),
                    Condition::Xx => old.is_none(),
                    _ => false,
                };
                if !skip {
                    let expires_at_ms = match ttl {
                        SetTtl::None => None,
                        SetTtl::Keep => old.as_ref().and_then(|entry| entry.expires_at_ms),
                        SetTtl::Expiry(expiry) => {
                            Some(u64::try_from(self.at_ms(*expiry)).unwrap_or(0))
                        }
                    };
                    self.put(
                        key,
                        Some(Entry {
                            value: Value::Bytes(value.clone()),
                            expires_at_ms,
                        }),
                    );
                }
                match (get, skip) {
                    (true, _) => bulk(old.as_ref()),
                    (false, true) => Reply::Nil,
                    (false, false) => Reply::Ok,
                }
            }
            DataCommand::SetNx(key, value) => {
                if self.get(key).is_some() {
                    return Reply::Int(0);
                }
                self.put(key, Some(plain(value)));
                Reply::Int(1)
            }
            DataCommand::GetSet(key, value) => {
                let old = bulk(self.get(key));
                self.put(key, Some(plain(value)));
                old
            }
            DataCommand::GetDel(key) => {
                let old = self.get(key).cloned();
                if old.is_some() {
                    self.put(key, None);
                }
                bulk(old.as_ref())
            }
            DataCommand::MGet(keys) => {
                Reply::Array(keys.iter().map(|key| bulk(self.get(key))).collect())
            }
            DataCommand::MSet(pairs) => {
                for (key, value) in pairs {
                    self.put(key, Some(plain(value)));
                }
                Reply::Ok
            }
            DataCommand::MSetNx(pairs) => {
                if pairs.iter().any(|(key, _)| self.get(key).is_some()) {
                    return Reply::Int(0);
                }
                for (key, value) in pairs {
                    self.put(key, Some(plain(value)));
                }
                Reply::Int(1)
            }
            DataCommand::Del(keys) => {
                let mut deleted = 0;
                for key in keys {
                    if self.get(key).is_some() {
                        self.put(key, None);
                        deleted += 1;
                    }
                }
                Reply::Int(deleted)
            }
            DataCommand::Exists(keys) => {
                Reply::Int(keys.iter().filter(|key| self.get(key).is_some()).count() as i64)
            }
            DataCommand::IncrBy(key, by) => {
                let old = self.get(key).cloned();
                let n = match old.as_ref().map(|entry| &entry.value) {
                    None => 0,
                    Some(Value::Int(n)) => *n,
                    Some(value) => match parse_int(&value_bytes(value)) {
                        Some(n) => n,
                        None => return Reply::err("value is not an integer or out of range"),
                    },
                };
                let Some(sum) = n.checked_add(*by) else {
                    return Reply::err("increment or decrement would overflow");
                };
                let expires_at_ms = old.and_then(|entry| entry.expires_at_ms);
                self.put(
                    key,
                    Some(Entry {
                        value: Value::Int(sum),
                        expires_at_ms,
                    }),
                );
                Reply::Int(sum)
            }
            DataCommand::Append(key, suffix) => {
                let old = self.get(key).cloned();
                let mut bytes = old
                    .as_ref()
                    .map(|entry| value_bytes(&entry.value))
                    .unwrap_or_default();
                bytes.extend_from_slice(suffix);
                let len = bytes.len() as i64;
                self.put(
                    key,
                    Some(Entry {
                        value: Value::Bytes(bytes),
                        expires_at_ms: old.and_then(|entry| entry.expires_at_ms),
                    }),
                );
                Reply::Int(len)
            }
            DataCommand::StrLen(key) => {
                Reply::Int(self.get(key).map_or(0, |entry| value_len(&entry.value)) as i64)
            }
            DataCommand::Expire(key, expiry, condition) => {
                let Some(entry) = self.get(key).cloned() else {
                    return Reply::Int(0);
                };
                let at = self.at_ms(*expiry);
                let current = entry
                    .expires_at_ms
                    .map(|at| i64::try_from(at).unwrap_or(i64::MAX));
                let go = match (condition, current) {
                    (Condition::Nx, Some(_)) | (Condition::Xx, None) | (Condition::Gt, None) => {
                        false
                    }
                    (Condition::Gt, Some(current)) => at > current,
                    (Condition::Lt, Some(current)) => at < current,
                    _ => true,
                };
                if !go {
                    return Reply::Int(0);
                }
                let now = i64::try_from(self.now_ms).unwrap_or(i64::MAX);
                if at <= now {
                    self.put(key, None);
                } else {
                    self.put(
                        key,
                        Some(Entry {
                            expires_at_ms: Some(at as u64),
                            ..entry
                        }),
                    );
                }
                Reply::Int(1)
            }
            DataCommand::Ttl(key, ms) => match self.get(key) {
                None => Reply::Int(-2),
                Some(Entry {
                    expires_at_ms: None,
                    ..
                }) => Reply::Int(-1),
                Some(Entry {
                    expires_at_ms: Some(at),
                    ..
                }) => {
                    let left = at.saturating_sub(self.now_ms);
                    Reply::Int(if *ms { left } else { (left + 500) / 1000 } as i64)
                }
            },
            DataCommand::Persist(key) => match self.get(key).cloned() {
                Some(entry) if entry.expires_at_ms.is_some() => {
                    self.put(
                        key,
                        Some(Entry {
                            expires_at_ms: None,
                            ..entry
                        }),
                    );
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            },
            DataCommand::Type(key) => Reply::Status(
                if self.get(key).is_some() {
                    "string"
                } else {
                    "none"
                }
                .into(),
            ),
        }
    }
}

fn plain(value: &[u8]) -> Entry {
    Entry {
        value: Value::Bytes(value.to_vec()),
        expires_at_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::command::{Command, parse};

    fn run(view: &mut View, line: &str) -> Reply {
        let args = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        match parse(args) {
            Ok(Command::Data(command)) => {
                for key in command.keys() {
                    if !view.slots.contains_key(key) {
                        view.read(key.to_vec(), 0, None);
                    }
                }
                view.apply(&command)
            }
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn string_commands_answer_as_redis_does() {
        let mut view = View::new(1_000_000);
        assert_eq!(run(&mut view, "SET k v NX"), Reply::Ok);
        assert_eq!(run(&mut view, "SET k w NX"), Reply::Nil);
        assert_eq!(run(&mut view, "SET k w XX GET"), Reply::Bulk(b"v".to_vec()));
        assert_eq!(run(&mut view, "APPEND k 12"), Reply::Int(3));
        assert_eq!(
            run(&mut view, "INCR k"),
            Reply::err("value is not an integer or out of range")
        );
        assert_eq!(run(&mut view, "SET n 41"), Reply::Ok);
        assert_eq!(run(&mut view, "INCRBY n 1"), Reply::Int(42));
        assert_eq!(run(&mut view, "STRLEN n"), Reply::Int(2));
        assert_eq!(run(&mut view, "TTL n"), Reply::Int(-1));
        assert_eq!(run(&mut view, "PEXPIRE n 1500"), Reply::Int(1));
        assert_eq!(run(&mut view, "TTL n"), Reply::Int(2));
        assert_eq!(run(&mut view, "EXPIRE n 10 LT"), Reply::Int(0));
        assert_eq!(run(&mut view, "INCR n"), Reply::Int(43));
        assert_eq!(
            run(&mut view, "PTTL n"),
            Reply::Int(1500),
            "INCR keeps the TTL"
        );
        assert_eq!(run(&mut view, "PERSIST n"), Reply::Int(1));
        assert_eq!(run(&mut view, "EXISTS n n nope"), Reply::Int(2));
        assert_eq!(run(&mut view, "MSETNX a 1 n 2"), Reply::Int(0));
        assert_eq!(run(&mut view, "DEL n k nope"), Reply::Int(2));
        assert_eq!(run(&mut view, "TYPE k"), Reply::Status("none".into()));
        assert_eq!(run(&mut view, "GETSET g 1"), Reply::Nil);
        assert_eq!(run(&mut view, "GETDEL g"), Reply::Bulk(b"1".to_vec()));
        assert_eq!(run(&mut view, "EXPIRE a 10"), Reply::Int(0), "missing");
        assert_eq!(run(&mut view, "SET e x PX 5"), Reply::Ok);
        assert_eq!(run(&mut view, "EXPIRE e -1"), Reply::Int(1));
        assert_eq!(run(&mut view, "GET e"), Reply::Nil, "expired at once");
        let changes = view.changes();
        assert!(changes.contains(&(&b"e"[..], Change::Del)));
        assert!(changes.contains(&(&b"n"[..], Change::Del)));
    }
}
