//! The Rust client's `connect_with` on the simulated network: names are
//! the world's (`node-N`), a peer that never answers times a request out
//! in virtual time, and an unknown name or a closed port is a `Connect`
//! error, nothing sent.

use std::net::SocketAddr;
use std::time::Duration;

use jubilant_client::{ClientError, ClientOptions};
use jubilant_core::env::{Clock, Listener, Net, Spawn};
use jubilant_io_sim::{FaultConfig, NodeId, World, node_ip};

const SERVER: NodeId = NodeId(1);
const CLIENT: NodeId = NodeId(2);

const OPTIONS: ClientOptions = ClientOptions {
    connect_timeout: Duration::from_secs(1),
    request_timeout: Some(Duration::from_millis(200)),
    credentials: None,
};

#[test]
fn a_silent_peer_times_a_request_out_and_bad_targets_are_refused() {
    let world = World::new(7, FaultConfig::none());
    // A peer that accepts and never answers.
    let server = world.env(SERVER);
    let listener = world.block_on(SERVER, async move {
        server
            .listen(SocketAddr::new(node_ip(SERVER), 7000))
            .await
            .expect("listen")
    });
    let server = world.env(SERVER);
    drop(server.spawn("silent", async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    }));
    let env = world.env(CLIENT);
    let (answer, waited, no_port, no_name) = world.block_on(CLIENT, async move {
        let client = jubilant_client::connect_with(&env, "node-1:7000", OPTIONS)
            .await
            .expect("connect by name");
        let began = env.now_mono();
        let answer = client.ping().await;
        let waited = env.now_mono().saturating_since(began);
        let no_port = jubilant_client::connect_with(&env, "node-1:7001", OPTIONS)
            .await
            .err();
        let no_name = jubilant_client::connect_with(&env, "db.internal:7000", OPTIONS)
            .await
            .err();
        (answer, waited, no_port, no_name)
    });
    assert_eq!(
        answer,
        Err(ClientError::Timeout(Duration::from_millis(200)))
    );
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(
        matches!(&no_port, Some(ClientError::Connect { reason, .. }) if reason.contains("10.0.0.1:7001")),
        "{no_port:?}"
    );
    assert!(
        matches!(&no_name, Some(ClientError::Connect { reason, .. }) if reason.contains("cannot resolve")),
        "{no_name:?}"
    );
}
