//! The simulated network delivers in order, holds traffic across
//! partitions, and resets connections of dead nodes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::env::{Clock, Listener, Net};
use jubilant_io_sim::{Fault, FaultConfig, NodeId, Step, World, node_ip};

const SERVER: NodeId = NodeId(1);
const CLIENT: NodeId = NodeId(2);

/// Starts an echo server on SERVER and returns its address.
fn echo_server(world: &World) -> SocketAddr {
    let env = world.env(SERVER);
    let listener = world.block_on(SERVER, async move {
        env.listen(SocketAddr::new(node_ip(SERVER), 7000))
            .await
            .expect("listen")
    });
    let addr = listener.local_addr().expect("addr");
    let env = world.env(SERVER);
    world.spawn(SERVER, "echo-accept", async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = &env;
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    addr
}

#[test]
fn bytes_arrive_in_order_after_latency() {
    let mut faults = FaultConfig::none();
    faults.set(Fault::NetLatencyUs, 5_000.0);
    let world = World::new(1, faults);
    let addr = echo_server(&world);
    let env = world.env(CLIENT);
    let echoed = world.block_on(CLIENT, async move {
        let mut stream = env.connect(addr).await.expect("connect");
        let message: Vec<u8> = (0..200u8).collect();
        for chunk in message.chunks(7) {
            stream.write_all(chunk).await.expect("write");
        }
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).await.expect("read");
        (message, back)
    });
    assert_eq!(echoed.0, echoed.1);
    assert!(world.now().as_nanos() > 0, "latency took virtual time");
}

#[test]
fn a_partition_holds_bytes_until_it_heals() {
    let world = World::new(2, FaultConfig::none());
    let addr = echo_server(&world);
    let env = world.env(CLIENT);
    let got = Arc::new(Mutex::new(None));
    let connected = Arc::new(Mutex::new(false));
    let (out, flag) = (Arc::clone(&got), Arc::clone(&connected));
    world.spawn(CLIENT, "client", async move {
        let mut stream = env.connect(addr).await.expect("connect");
        *flag.lock().expect("flag") = true;
        stream.write_all(b"ping").await.expect("write");
        let mut back = [0u8; 4];
        stream.read_exact(&mut back).await.expect("read");
        *out.lock().expect("slot") = Some(back);
    });
    // Let the connection open, then cut it before the ping crosses.
    while !*connected.lock().expect("flag") {
        assert_ne!(world.step(), Step::Idle);
    }
    world.partition(CLIENT, SERVER);
    world.run_until_idle(10_000);
    assert!(
        got.lock().expect("slot").is_none(),
        "bytes crossed a partition"
    );
    world.heal(CLIENT, SERVER);
    while got.lock().expect("slot").is_none() {
        assert_ne!(world.step(), Step::Idle, "nothing delivered after the heal");
    }
    assert_eq!(got.lock().expect("slot").as_ref(), Some(b"ping"));
}

#[test]
fn killing_the_server_closes_its_connections_after_what_it_sent() {
    let world = World::new(3, FaultConfig::none());
    let addr = echo_server(&world);
    let env = world.env(CLIENT);
    let result = Arc::new(Mutex::new(None));
    let out = Arc::clone(&result);
    world.spawn(CLIENT, "client", async move {
        let mut stream = env.connect(addr).await.expect("connect");
        stream.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        stream.read_exact(&mut one).await.expect("first echo");
        let mut more = [0u8; 1];
        *out.lock().expect("slot") = Some(stream.read(&mut more).await.map_err(|e| e.kind()));
    });
    world.run_until_idle(10_000);
    world.kill(SERVER);
    world.run_until_idle(10_000);
    // Its kernel closes the socket: the client reads the end of the stream.
    assert_eq!(*result.lock().expect("slot"), Some(Ok(0)));
}

#[test]
fn a_server_that_loses_power_says_nothing_and_writes_to_it_time_out() {
    use jubilant_io_sim::RETRANSMIT_TIMEOUT_NANOS;
    let world = World::new(5, FaultConfig::none());
    let addr = echo_server(&world);
    let env = world.env(CLIENT);
    let result = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&result);
    let stream = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&stream);
    world.spawn(CLIENT, "client", async move {
        let mut stream = env.connect(addr).await.expect("connect");
        stream.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        stream.read_exact(&mut one).await.expect("first echo");
        *slot.lock().expect("slot") = Some(stream);
    });
    world.run_until_idle(10_000);
    world.crash(SERVER);
    let env = world.env(CLIENT);
    world.spawn(CLIENT, "after", async move {
        let mut stream = stream.lock().expect("slot").take().expect("connected");
        // A read waits: nothing comes, not even the end of the stream.
        let mut more = [0u8; 1];
        let read = std::pin::pin!(stream.read(&mut more));
        let waited = std::pin::pin!(env.sleep(std::time::Duration::from_millis(50)));
        let timed_out = matches!(
            futures::future::select(read, waited).await,
            futures::future::Either::Right(_)
        );
        out.lock()
            .expect("slot")
            .push(format!("read waited: {timed_out}"));
        // Writes vanish until the retransmission timeout, then fail.
        let early = stream.write_all(b"y").await.is_ok();
        env.sleep(std::time::Duration::from_nanos(RETRANSMIT_TIMEOUT_NANOS))
            .await;
        let late = stream.write_all(b"z").await.map_err(|e| e.kind());
        out.lock()
            .expect("slot")
            .push(format!("early ok: {early}, late: {late:?}"));
    });
    while world.step() != Step::Idle {}
    assert_eq!(
        *result.lock().expect("slot"),
        vec![
            "read waited: true".to_owned(),
            "early ok: true, late: Err(TimedOut)".to_owned()
        ]
    );
}

#[test]
fn connection_drops_are_injected_and_counted() {
    let mut faults = FaultConfig::none();
    faults.set(Fault::NetDrop, 1.0);
    let world = World::new(4, faults);
    let addr = echo_server(&world);
    let env = world.env(CLIENT);
    let kind = world.block_on(CLIENT, async move {
        let mut stream = env.connect(addr).await.expect("connect");
        stream.write_all(b"x").await.map_err(|e| e.kind())
    });
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset));
    assert_eq!(world.fault_counts().get(Fault::NetDrop), 1);
}

#[test]
fn connecting_to_nothing_is_refused() {
    let world = World::new(5, FaultConfig::none());
    let env = world.env(CLIENT);
    let kind = world.block_on(CLIENT, async move {
        env.connect(SocketAddr::new(node_ip(SERVER), 1))
            .await
            .err()
            .map(|e| e.kind())
    });
    assert_eq!(kind, Some(std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn names_resolve_by_the_worlds_own_table_and_connect_goes_through_the_seam() {
    let world = World::new(6, FaultConfig::none());
    let addr = echo_server(&world);
    let env = world.env(CLIENT);
    let (resolved, echoed, unknown) = world.block_on(CLIENT, async move {
        let resolved = (
            Net::resolve(&env, "node-1", 7000).await.expect("node-1"),
            Net::resolve(&env, "localhost", 80)
                .await
                .expect("localhost"),
            Net::resolve(&env, "10.0.0.9", 5)
                .await
                .expect("an IP literal"),
        );
        // Through the trait, as a client generic over the environment dials.
        let target = resolved.0[0];
        let mut stream = Net::connect(&env, target).await.expect("connect");
        stream.write_all(b"hi").await.expect("write");
        let mut echoed = [0u8; 2];
        stream.read_exact(&mut echoed).await.expect("read");
        let unknown = Net::resolve(&env, "db.internal", 6767)
            .await
            .err()
            .map(|e| e.kind());
        (resolved, echoed, unknown)
    });
    assert_eq!(resolved.0, vec![addr], "node-1 is the server's node");
    assert_eq!(
        resolved.1,
        vec![SocketAddr::new(node_ip(CLIENT), 80)],
        "localhost is this node"
    );
    assert_eq!(resolved.2, vec!["10.0.0.9:5".parse().expect("addr")]);
    assert_eq!(&echoed, b"hi");
    assert_eq!(unknown, Some(std::io::ErrorKind::NotFound));
}
