//! A minimal Redis client (RESP2) for the server benchmark, so Redis is
//! driven by the same load generator, with the same connections and
//! pipeline depths, as Jubilant DB.
//!
//! Invariant kept here: **replies are matched to calls in order.** Redis
//! answers a connection's commands in the order it received them, so the
//! writer task queues each caller's reply slot as it writes the command,
//! and the reader task hands each complete reply to the oldest slot.

// A benchmark's client: it runs on tokio directly, outside the engine's
// environment seam.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

type Slot = oneshot::Sender<Result<Vec<u8>, String>>;

/// One pipelined connection to a Redis server.
#[derive(Clone)]
pub struct Resp {
    commands: mpsc::UnboundedSender<(Vec<u8>, Slot)>,
}

impl Resp {
    /// Connects and starts the connection's reader and writer tasks on the
    /// current tokio runtime.
    ///
    /// # Errors
    /// If the connection cannot be made.
    pub async fn connect(addr: SocketAddr) -> io::Result<Resp> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        let slots: Arc<Mutex<VecDeque<Slot>>> = Arc::default();
        let (commands, mut queued) = mpsc::unbounded_channel::<(Vec<u8>, Slot)>();
        let writer_slots = Arc::clone(&slots);
        tokio::spawn(async move {
            while let Some((mut batch, slot)) = queued.recv().await {
                let mut waiting = vec![slot];
                // Commands queued together go out in one write.
                while let Ok((command, slot)) = queued.try_recv() {
                    batch.extend_from_slice(&command);
                    waiting.push(slot);
                }
                writer_slots
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(waiting);
                if writer.write_all(&batch).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buffer.extend_from_slice(&chunk[..n]);
                let mut start = 0;
                while let Some(len) = reply_len(&buffer[start..]) {
                    let reply = buffer[start..start + len].to_vec();
                    start += len;
                    let slot = slots
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .pop_front();
                    if let Some(slot) = slot {
                        let answer = if reply.first() == Some(&b'-') {
                            Err(String::from_utf8_lossy(&reply).into_owned())
                        } else {
                            Ok(reply)
                        };
                        let _ = slot.send(answer);
                    }
                }
                buffer.drain(..start);
            }
        });
        Ok(Resp { commands })
    }

    /// Sends one command (its arguments) and waits for its reply.
    ///
    /// # Errors
    /// Redis's error reply, or the connection's end.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Vec<u8>, String> {
        let mut command = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            command.extend_from_slice(arg);
            command.extend_from_slice(b"\r\n");
        }
        let (slot, reply) = oneshot::channel();
        self.commands
            .send((command, slot))
            .map_err(|_| "the connection is closed".to_owned())?;
        reply
            .await
            .map_err(|_| "the connection closed".to_owned())?
    }
}

/// The length of the complete reply at the start of `buf`, if it is all
/// there (simple strings, errors, integers and bulk strings: what SET, GET
/// and CONFIG SET answer).
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")? + 2;
    match buf.first()? {
        b'$' => {
            let len: i64 = std::str::from_utf8(&buf[1..line_end - 2])
                .ok()?
                .parse()
                .ok()?;
            if len < 0 {
                return Some(line_end);
            }
            let total = line_end + len as usize + 2;
            (buf.len() >= total).then_some(total)
        }
        _ => Some(line_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_where_they_end() {
        assert_eq!(reply_len(b"+OK\r\n$3\r\nabc\r\n"), Some(5));
        assert_eq!(reply_len(b"$3\r\nabc\r\n+OK"), Some(9));
        assert_eq!(reply_len(b"$3\r\nab"), None);
        assert_eq!(reply_len(b"$-1\r\n"), Some(5));
        assert_eq!(reply_len(b"-ERR x\r\n"), Some(8));
        assert_eq!(reply_len(b"+O"), None);
    }
}
