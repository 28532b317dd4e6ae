//! Requests as RESP clients send them: an array of bulk strings
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), or an inline command line
//! (`PING\r\n`, as typed into telnet).
//!
//! Hand-written, as Redis's own server does it (`processMultibulkBuffer`),
//! rather than with a general RESP decoder such as `redis-protocol`
//! (which the simulator's RESP client uses for replies):
//! - a request is never nested, yet a general decoder recurses into nested
//!   arrays, so `*1\r\n` repeated a few hundred thousand times would
//!   overflow the server's stack; here nesting is a protocol error;
//! - a general decoder starts over from the frame's first byte on every
//!   read, so a 64 MiB value arriving in 64 KiB reads is scanned a thousand
//!   times; this parser keeps its place and touches each byte once;
//! - the limits are checked on the announced lengths, before anything is
//!   buffered or allocated for them.
//!
//! Invariants kept here:
//! - **Bounded.** A request's announced bytes are at most `request_bytes_max`
//!   and its arguments at most [`ARGS_MAX`]; a header line or inline command
//!   longer than [`LINE_BYTES_MAX`] is refused; argument vectors are
//!   allocated as bytes arrive, not as lengths announce.
//! - **Exact.** Bulk strings are binary: any bytes, taken by length.

/// How many arguments one request may have (Redis: 1024 * 1024).
pub const ARGS_MAX: usize = 1024 * 1024;
/// The longest header line (`*N`, `$N`) or inline command.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Why the byte stream cannot be read on: the connection is told (with
/// Redis's text) and closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// One request, whole: its arguments and the bytes it took on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The command name and its arguments.
    pub args: Vec<Vec<u8>>,
    /// Its size on the wire (for the request-byte budget).
    pub wire_bytes: u64,
}

/// Splits a byte stream into requests; keeps its place across reads.
#[derive(Debug)]
pub struct RequestParser {
    buffer: Vec<u8>,
    /// Where unread bytes begin in `buffer`.
    at: usize,
    request_bytes_max: u64,
    /// The request being read: its arguments so far, how many it announced,
    /// and the length of the bulk string now arriving.
    args: Vec<Vec<u8>>,
    args_announced: Option<usize>,
    bulk_len: Option<usize>,
    /// Bytes of the current request consumed so far and announced in all.
    consumed: u64,
    announced: u64,
}

impl RequestParser {
    /// A parser refusing requests over `request_bytes_max` bytes.
    pub fn new(request_bytes_max: u64) -> Self {
        RequestParser {
            buffer: Vec::new(),
            at: 0,
            request_bytes_max,
            args: Vec::new(),
            args_announced: None,
            bulk_len: None,
            consumed: 0,
            announced: 0,
        }
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buffer.len() {
            self.buffer.clear();
            self.at = 0;
        } else if self.at > 64 * 1024 && self.at * 2 > self.buffer.len() {
            self.buffer.drain(..self.at);
            self.at = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The request bytes this parser holds or has been told are coming:
    /// bytes read and not yet handed out in a request, or the bulk
    /// lengths announced so far, whichever is more. A server reserves
    /// them against its request budget before reading on.
    pub fn claim(&self) -> u64 {
        let held: usize = self.args.iter().map(Vec::len).sum();
        held as u64 + ((self.buffer.len() - self.at) as u64).max(self.announced)
    }

    /// Whether a request is partly read (its clock is running).
    pub fn mid_request(&self) -> bool {
        self.args_announced.is_some() || self.at < self.buffer.len()
    }

    /// Gives the buffer's memory back when it is empty and large.
    pub fn shrink(&mut self) {
        if self.at == self.buffer.len() && self.buffer.capacity() > 1024 * 1024 {
            self.buffer = Vec::new();
            self.at = 0;
        }
    }

    /// The next whole request, if one has arrived.
    pub fn next_request(&mut self) -> Result<Option<Request>, ProtocolError> {
        loop {
            if self.args_announced.is_none() {
                let Some(&first) = self.buffer.get(self.at) else {
                    return Ok(None);
                };
                if first != b'*' {
                    return self.inline();
                }
                let Some(line) = self.line()? else {
                    return Ok(None);
                };
                let count = parse_len(&line[1..])
                    .filter(|&n| n <= ARGS_MAX as i64)
                    .ok_or_else(|| ProtocolError("invalid multibulk length".into()))?;
                if count <= 0 {
                    // Redis skips empty requests without a reply.
                    self.finish();
                    continue;
                }
                self.args_announced = Some(count as usize);
                self.args = Vec::with_capacity((count as usize).min(64));
            }
            let announced = self.args_announced.unwrap_or(0);
            while self.args.len() < announced {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        let Some(line) = self.line()? else {
                            return Ok(None);
                        };
                        if line.first() != Some(&b'$') {
                            let got = line.first().map_or(' ', |&b| b as char);
                            return Err(ProtocolError(format!("expected '$', got '{got}'")));
                        }
                        let len = parse_len(&line[1..])
                            .filter(|&n| n >= 0)
                            .ok_or_else(|| ProtocolError("invalid bulk length".into()))?
                            as u64;
                        self.announced = self.announced.saturating_add(len + 2);
                        if self.announced.saturating_add(self.consumed) > self.request_bytes_max {
                            return Err(ProtocolError(format!(
                                "a request of more than {} bytes (limits.frame_bytes_max)",
                                self.request_bytes_max
                            )));
                        }
                        let len = len as usize;
                        self.bulk_len = Some(len);
                        len
                    }
                };
                let available = self.buffer.len() - self.at;
                if available < len + 2 {
                    return Ok(None);
                }
                let bytes = self.buffer[self.at..self.at + len].to_vec();
                if &self.buffer[self.at + len..self.at + len + 2] != b"\r\n" {
                    return Err(ProtocolError("a bulk string does not end in CRLF".into()));
                }
                self.at += len + 2;
                self.consumed += len as u64 + 2;
                self.announced -= len as u64 + 2;
                self.bulk_len = None;
                self.args.push(bytes);
            }
            let request = Request {
                args: std::mem::take(&mut self.args),
                wire_bytes: self.consumed,
            };
            self.finish();
            return Ok(Some(request));
        }
    }

    fn finish(&mut self) {
        self.args_announced = None;
        self.bulk_len = None;
        self.consumed = 0;
        self.announced = 0;
    }

    /// The next CRLF-terminated line (without the CRLF), consumed.
    fn line(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        let rest = &self.buffer[self.at..];
        let Some(end) = rest.windows(2).position(|pair| pair == b"\r\n") else {
            if rest.len() > LINE_BYTES_MAX {
                return Err(ProtocolError("too big a header line".into()));
            }
            return Ok(None);
        };
        if end > LINE_BYTES_MAX {
            return Err(ProtocolError("too big a header line".into()));
        }
        let line = rest[..end].to_vec();
        self.at += end + 2;
        self.consumed += end as u64 + 2;
        Ok(Some(line))
    }

    /// An inline command: one line of space-separated words.
    fn inline(&mut self) -> Result<Option<Request>, ProtocolError> {
        let rest = &self.buffer[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > LINE_BYTES_MAX {
                return Err(ProtocolError("too big inline request".into()));
            }
            return Ok(None);
        };
        if end > LINE_BYTES_MAX {
            return Err(ProtocolError("too big inline request".into()));
        }
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        let args: Vec<Vec<u8>> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|word| !word.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        self.at += end + 1;
        let wire_bytes = end as u64 + 1;
        if args.is_empty() {
            return self.next_request();
        }
        Ok(Some(Request { args, wire_bytes }))
    }
}

/// A decimal length as in `*3` or `$-1` (Redis's `string2ll`: an optional
/// minus and digits, nothing else).
fn parse_len(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut RequestParser) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut out = Vec::new();
        while let Some(request) = parser.next_request()? {
            out.push(request.args);
        }
        Ok(out)
    }

    fn words(list: &[&[u8]]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.to_vec()).collect()
    }

    #[test]
    fn pipelined_requests_split_anywhere_come_out_whole_and_in_order() {
        let stream = b"*2\r\n$3\r\nGET\r\n$3\r\na\x00b\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING\r\n*0\r\n";
        for cut in 0..stream.len() {
            let mut parser = RequestParser::new(1024);
            parser.extend(&stream[..cut]);
            let mut got = all(&mut parser).expect("valid");
            parser.extend(&stream[cut..]);
            got.extend(all(&mut parser).expect("valid"));
            assert_eq!(
                got,
                vec![
                    words(&[b"GET", b"a\x00b"]),
                    words(&[b"SET", b"k", b""]),
                    words(&[b"PING"]),
                ],
                "cut at {cut}"
            );
            assert!(!parser.mid_request());
        }
    }

    #[test]
    fn bad_framing_and_oversized_requests_are_protocol_errors() {
        for bad in [
            &b"*x\r\n"[..],
            b"*2\r\n+GET\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nGETxx",
            b"*1\r\n*1\r\n",
            b"*99999999999\r\n",
        ] {
            let mut parser = RequestParser::new(1024);
            parser.extend(bad);
            assert!(all(&mut parser).is_err(), "{bad:?}");
        }
        let mut parser = RequestParser::new(100);
        parser.extend(b"*2\r\n$3\r\nSET\r\n$1000\r\n");
        assert!(all(&mut parser).is_err(), "announced past the limit");
        let mut parser = RequestParser::new(100);
        parser.extend(&[b'x'; LINE_BYTES_MAX + 1]);
        assert!(all(&mut parser).is_err(), "an endless inline line");
    }
}
