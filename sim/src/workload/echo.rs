//! The echo workload: clients on their own nodes send length-prefixed
//! frames to an echo server over the simulated network, through latency,
//! connection drops, partitions and server kills.
//!
//! It exercises the network half of the environment seam (the server side
//! through `Net`/`Listener`, exactly as the real server will use it) until
//! the real server runs in the simulator. Oracles:
//! - `echo_integrity`: every reply is byte for byte the request it answers
//!   (nothing corrupted, reordered, duplicated or crossed between
//!   connections);
//! - `liveness`: with faults off and partitions healed, every client
//!   completes [`LIVENESS_ROUND_TRIPS`] more round trips within
//!   [`LIVENESS_POLLS_MAX`] polls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::env::{Clock, Listener, Net, Spawn};
use jubilant_core::mutex::lock;
use jubilant_io_sim::{Fault, FaultConfig, NodeId, SimEnv, SimRng, Step, Stream, World, node_ip};

use super::lives::Partitions;
use crate::options::RunOptions;
use crate::report::Report;

const SERVER: NodeId = NodeId(1);
const PORT: u16 = 7000;
/// Largest frame either side accepts; a longer length closes the connection.
const FRAME_BYTES_MAX: usize = 64 * 1024;
/// How long a client waits for a reply before giving up on the connection.
const REPLY_TIMEOUT: Duration = Duration::from_millis(200);
/// Round trips each client must complete in the fault-free final phase.
pub const LIVENESS_ROUND_TRIPS: u64 = 5;
/// Polls the final phase may take.
pub const LIVENESS_POLLS_MAX: u64 = 200_000;

#[derive(Default)]
struct Model {
    failure: Option<(&'static str, String)>,
    round_trips: Vec<u64>,
    checks: u64,
    reconnects: u64,
    timeouts: u64,
}

type Shared = Arc<Mutex<Model>>;

fn server_addr() -> SocketAddr {
    SocketAddr::new(node_ip(SERVER), PORT)
}

/// Runs the workload on `world`, filling `report`.
pub fn run(world: &World, options: &RunOptions, report: &mut Report) {
    let mut fault_rng = SimRng::new(options.seed, Stream::Faults);
    let mut rng = SimRng::new(options.seed, Stream::Workload);
    let clients = rng.between(1, 4);
    let model: Shared = Arc::new(Mutex::new(Model {
        round_trips: vec![0; clients as usize],
        ..Model::default()
    }));
    world.trace(format_args!("workload echo: {clients} clients"));
    start_server(world);
    for client in 0..clients {
        let env = world.env(NodeId(2 + client as u32));
        let task = client_loop(
            env,
            client as usize,
            Arc::clone(&model),
            SimRng::new(rng.next_u64(), Stream::Workload),
        );
        world.spawn(NodeId(2 + client as u32), "echo-client", task);
    }
    let faults = world.faults();
    let mut partitions = Partitions::default();
    let peers: Vec<NodeId> = (0..clients).map(|n| NodeId(2 + n as u32)).collect();
    let mut steps = 0u64;
    while !options.budget_spent(steps, world.now().as_nanos() / 1_000_000)
        && lock(&model).failure.is_none()
    {
        if !super::step_while_running(world, &mut steps, report) {
            break;
        }
        partitions.step(world, &mut fault_rng, SERVER, &peers);
        if fault_rng.chance(faults.get(Fault::Kill)) {
            world.count_fault(Fault::Kill);
            world.kill(SERVER);
            report.kills += 1;
            start_server(world);
        }
    }
    report.steps = steps;
    if lock(&model).failure.is_none() && report.failure.is_none() {
        report.steps += final_phase(world, &model, &mut partitions, clients, report);
    }
    let m = lock(&model);
    if let Some((oracle, message)) = &m.failure {
        report.fail(oracle, message.clone());
    }
    report.check("echo_integrity", m.checks);
    report
        .stats
        .insert("round_trips".to_owned(), m.round_trips.iter().sum());
    report.stats.insert("reconnects".to_owned(), m.reconnects);
    report.stats.insert("reply_timeouts".to_owned(), m.timeouts);
}

/// Faults off, partitions healed: every client must complete more round
/// trips within a bounded number of polls. Returns the polls used.
fn final_phase(
    world: &World,
    model: &Shared,
    partitions: &mut Partitions,
    clients: u64,
    report: &mut Report,
) -> u64 {
    world.set_faults(FaultConfig::none());
    partitions.heal_all(world, SERVER);
    let target: Vec<u64> = lock(model)
        .round_trips
        .iter()
        .map(|n| n + LIVENESS_ROUND_TRIPS)
        .collect();
    let mut polls = 0;
    report.check("liveness", 1);
    while polls < LIVENESS_POLLS_MAX {
        {
            let m = lock(model);
            if m.failure.is_some() || m.round_trips.iter().zip(&target).all(|(n, t)| n >= t) {
                return polls;
            }
        }
        match world.step() {
            Step::Polled => polls += 1,
            Step::Advanced => {}
            Step::Idle => break,
        }
    }
    let done = lock(model).round_trips.clone();
    report.fail(
        "liveness",
        format!("with faults off, {clients} clients did not each complete {LIVENESS_ROUND_TRIPS} more round trips: {done:?}, needed {target:?}"),
    );
    polls
}

fn start_server(world: &World) {
    let env = world.env(SERVER);
    world.spawn(SERVER, "echo-server", async move {
        let listener = match env.listen(server_addr()).await {
            Ok(listener) => listener,
            Err(err) => panic!("the echo server cannot listen on {}: {err}", server_addr()),
        };
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => drop(env.spawn("echo-connection", serve(stream))),
                // Out of descriptors (accept_error): the client waits in
                // the backlog until a retry takes it.
                Err(_) => env.sleep(Duration::from_millis(1)).await,
            }
        }
    });
}

/// Reads one length-prefixed frame; `None` at a clean end of stream.
async fn read_frame<S: futures::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

async fn write_frame<S: futures::io::AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    stream.write_all(&len.to_le_bytes()).await?;
    stream.write_all(payload).await
}

async fn serve(mut stream: jubilant_io_sim::SimStream) {
    while let Ok(Some(frame)) = read_frame(&mut stream).await {
        if write_frame(&mut stream, &frame).await.is_err() {
            return;
        }
    }
}

async fn client_loop(env: SimEnv, client: usize, model: Shared, mut rng: SimRng) {
    let mut seq = 0u64;
    loop {
        let mut stream = match env.connect(server_addr()).await {
            Ok(stream) => stream,
            Err(_) => {
                env.sleep(Duration::from_millis(rng.between(1, 20))).await;
                continue;
            }
        };
        lock(&model).reconnects += 1;
        loop {
            let len = rng.between(1, 2_000) as usize;
            let mut request = format!("client {client} seq {seq} ").into_bytes();
            request.resize(len.max(request.len()), b'a' + (seq % 26) as u8);
            seq += 1;
            if write_frame(&mut stream, &request).await.is_err() {
                break;
            }
            let reply = futures::select! {
                reply = read_frame(&mut stream).fuse() => reply,
                () = env.sleep(REPLY_TIMEOUT).fuse() => {
                    lock(&model).timeouts += 1;
                    break;
                }
            };
            let reply = match reply {
                Ok(Some(reply)) => reply,
                Ok(None) | Err(_) => break,
            };
            if !check_reply(&model, client, &request, &reply) {
                return;
            }
            env.sleep(Duration::from_micros(rng.between(0, 1_000)))
                .await;
        }
    }
}

/// Checks one reply against its request; returns whether it matched.
fn check_reply(model: &Shared, client: usize, request: &[u8], reply: &[u8]) -> bool {
    let mut m = lock(model);
    m.checks += 1;
    if reply != request {
        let message = format!(
            "client {client} sent {:?} but got back {:?}",
            String::from_utf8_lossy(&request[..request.len().min(40)]),
            String::from_utf8_lossy(&reply[..reply.len().min(40)])
        );
        m.failure.get_or_insert(("echo_integrity", message));
        return false;
    }
    m.round_trips[client] += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_differs_from_its_request_fails_echo_integrity() {
        let model: Shared = Arc::new(Mutex::new(Model {
            round_trips: vec![0],
            ..Model::default()
        }));
        assert!(check_reply(&model, 0, b"ping", b"ping"));
        assert!(!check_reply(&model, 0, b"ping", b"pong"));
        let m = lock(&model);
        assert_eq!(m.failure.as_ref().map(|f| f.0), Some("echo_integrity"));
        assert_eq!((m.checks, m.round_trips[0]), (2, 1));
    }
}
