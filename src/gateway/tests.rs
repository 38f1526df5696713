//! The gateway's table without a network: nodes are admitted with a channel for a link, and a
//! task plays each node, answering its orders.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::*;
use crate::cluster::link::JoinToken;
use crate::cluster::protocol::Hello;
use crate::config::Forwarding;

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

async fn gateway(front_ports: &str) -> (Arc<Gateway>, EventBus) {
    let settings = GatewayConfig {
        node_listen: "127.0.0.1:0".parse().unwrap(),
        front_address: None,
        front_ports: front_ports.into(),
        forwarding: Forwarding::External,
        nft_table: "unused".into(),
        masquerade: false,
        max_nodes: 8,
    };
    let token: JoinToken = format!("hati1.{}.{}", "a".repeat(32), "b".repeat(64))
        .parse()
        .unwrap();
    let events = EventBus::new();
    let relay_bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let gateway = Gateway::new(settings, token, relay_bind, events.clone())
        .await
        .unwrap();
    (Arc::new(gateway), events)
}

/// Admits a node of `capacity` that accepts every order.
async fn node(gateway: &Arc<Gateway>, name: &str, capacity: u32) -> u32 {
    node_with_codecs(gateway, name, capacity, &["h264"]).await
}

async fn node_with_codecs(
    gateway: &Arc<Gateway>,
    name: &str,
    capacity: u32,
    codecs: &[&str],
) -> u32 {
    let (link, mut orders) = mpsc::channel(16);
    let hello = Hello {
        protocol: crate::cluster::protocol::PROTOCOL_VERSION,
        secret: "a".repeat(32),
        name: name.into(),
        version: "test".into(),
        capacity,
        codecs: codecs.iter().map(|c| (*c).to_owned()).collect(),
        ports: PortSet {
            rtsp: 48010,
            control: 47999,
            video: 47998,
            audio: 48000,
        },
        address: None,
        sessions: Vec::new(),
    };
    let id = gateway
        .admit(
            hello,
            name.repeat(8),
            IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
            link,
        )
        .await
        .unwrap();
    let gateway = gateway.clone();
    tokio::spawn(async move {
        while let Some(order) = orders.recv().await {
            let request = match order {
                GatewayMessage::Launch(order) => order.request,
                GatewayMessage::Stop { request, .. } | GatewayMessage::Resume { request, .. } => {
                    request
                }
                _ => continue,
            };
            gateway.replied(id, request, None);
        }
    });
    id
}

fn launch(client: &str) -> ClientLaunch {
    ClientLaunch {
        client_id: client.into(),
        client_ip: CLIENT_IP,
        front_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        app_id: 1,
        app: "Test pattern".into(),
        params: LaunchParams {
            mode: Some((1280, 720, 30)),
            surround_info: STEREO,
            key: Some(MoonlightKey {
                rikey: [1; 16],
                rikeyid: 1,
                corever: 1,
            }),
        },
    }
}

#[tokio::test]
async fn a_used_up_port_range_is_a_clear_refusal_until_a_session_ends() {
    let (gateway, _events) = gateway("40000-40006").await;
    node(&gateway, "one", 4).await;
    let first = gateway.launch(launch("client-a")).await.unwrap();
    assert_eq!(first.rtsp, 40000);
    let refused = gateway.launch(launch("client-b")).await.unwrap_err();
    assert!(matches!(refused, GatewayError::NoFreePorts(1)), "{refused}");
    assert_eq!(refused.status(), 503);
    assert!(
        refused.to_string().contains("gateway.front_ports"),
        "{refused}"
    );
    assert_eq!(
        gateway.sessions().len(),
        1,
        "the refused launch left nothing"
    );
    assert!(gateway.cancel("client-a").await);
    assert_eq!(gateway.free_port_sets(), (1, 1));
    assert_eq!(gateway.launch(launch("client-b")).await.unwrap(), first);
}

#[tokio::test]
async fn no_node_and_full_nodes_are_named_in_the_refusal() {
    let (gateway, _events) = gateway("40000-40099").await;
    let error = gateway.launch(launch("client-a")).await.unwrap_err();
    assert!(error.to_string().contains("no node has joined"), "{error}");
    node(&gateway, "one", 1).await;
    node(&gateway, "two", 1).await;
    gateway.launch(launch("client-a")).await.unwrap();
    gateway.launch(launch("client-b")).await.unwrap();
    let nodes: Vec<u32> = gateway.sessions().iter().map(|s| s.node).collect();
    assert_ne!(nodes[0], nodes[1], "one session per node: {nodes:?}");
    let error = gateway.launch(launch("client-c")).await.unwrap_err();
    assert!(
        error.to_string().contains("no free node: all 2 nodes"),
        "{error}"
    );
    assert_eq!(
        gateway.free_port_sets(),
        (23, 25),
        "the refused launch took no ports"
    );
}

#[tokio::test]
async fn a_lost_node_ends_its_sessions_and_frees_their_ports() {
    let (gateway, events) = gateway("40000-40099").await;
    let mut bus = events.subscribe();
    let one = node(&gateway, "one", 2).await;
    gateway.launch(launch("client-a")).await.unwrap();
    gateway.launch(launch("client-b")).await.unwrap();
    gateway.node_lost(one, "test").await;
    assert!(gateway.sessions().is_empty());
    assert!(gateway.nodes().is_empty());
    assert_eq!(gateway.free_port_sets(), (25, 25));
    let mut ended = 0;
    while let Ok(stamped) = bus.try_recv() {
        if let Event::SessionEnded { reason, .. } = stamped.event {
            assert_eq!(reason, EndReason::NodeLost);
            ended += 1;
        }
    }
    assert_eq!(ended, 2);
}

#[tokio::test]
async fn the_gateway_offers_the_codecs_every_node_has() {
    let (gateway, _events) = gateway("40000-40099").await;
    assert_eq!(
        gateway.common_codecs(),
        None,
        "no node: the gateway's own encoders answer"
    );
    node_with_codecs(&gateway, "one", 1, &["h264", "hevc", "av1"]).await;
    assert_eq!(gateway.common_codecs().unwrap(), ["h264", "hevc", "av1"]);
    node_with_codecs(&gateway, "two", 1, &["hevc", "h264"]).await;
    assert_eq!(gateway.common_codecs().unwrap(), ["h264", "hevc"]);
}
