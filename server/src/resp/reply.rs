//! Replies, written in RESP2 or, after `HELLO 3`, RESP3.
//!
//! Invariants kept here:
//! - **A reply means the same in both versions**: RESP3's null and map
//!   become RESP2's null bulk string (or null array) and flat array, as
//!   Redis writes them.
//! - **One line stays one line**: an error or status text never carries
//!   CR or LF (they become spaces), so a message cannot break framing.

use std::borrow::Cow;

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A status line (`+PONG`, `+string`).
    Status(Cow<'static, str>),
    /// An error line: its text begins with the code (`ERR ...`,
    /// `WRONGTYPE ...`).
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// Nothing (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// No array (`*-1` in RESP2, `_` in RESP3): an `EXEC` whose watched
    /// keys changed.
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// A map (`%` in RESP3, a flat array of pairs in RESP2).
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// An error reply with Redis's generic `ERR` code.
    pub fn err(text: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {text}"))
    }

    /// A bulk string of text.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Bulk(text.into().into_bytes())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the reply's bytes, in RESP3 if `resp3`.
    pub fn encode(&self, resp3: bool, out: &mut Vec<u8>) {
        match self {
            Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
            Reply::Status(text) => line(out, b'+', text),
            Reply::Error(text) => line(out, b'-', text),
            Reply::Int(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(bytes) => {
                out.push(b'$');
                out.extend_from_slice(bytes.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for item in items {
                    item.encode(resp3, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (key, value) in pairs {
                    key.encode(resp3, out);
                    value.encode(resp3, out);
                }
            }
        }
    }
}

fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, kind: u8, text: &str) {
    out.push(kind);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(reply: &Reply) -> (String, String) {
        let (mut two, mut three) = (Vec::new(), Vec::new());
        reply.encode(false, &mut two);
        reply.encode(true, &mut three);
        (
            String::from_utf8_lossy(&two).into_owned(),
            String::from_utf8_lossy(&three).into_owned(),
        )
    }

    #[test]
    fn replies_are_written_as_redis_writes_them() {
        assert_eq!(both(&Reply::Ok).0, "+OK\r\n");
        assert_eq!(both(&Reply::Int(-3)).0, ":-3\r\n");
        assert_eq!(both(&Reply::Bulk(b"a\r\nb".to_vec())).0, "$4\r\na\r\nb\r\n");
        assert_eq!(both(&Reply::Nil), ("$-1\r\n".into(), "_\r\n".into()));
        assert_eq!(both(&Reply::NilArray), ("*-1\r\n".into(), "_\r\n".into()));
        assert_eq!(
            both(&Reply::err("bad\r\nthing")).0,
            "-ERR bad  thing\r\n",
            "an error stays on one line"
        );
        let map = Reply::Map(vec![(Reply::text("proto"), Reply::Int(3))]);
        assert_eq!(
            both(&map),
            (
                "*2\r\n$5\r\nproto\r\n:3\r\n".into(),
                "%1\r\n$5\r\nproto\r\n:3\r\n".into()
            )
        );
    }
}
