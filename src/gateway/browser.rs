//! Browsers through the gateway: a paired browser's session is placed (or found) like a
//! Moonlight client's, and its signalling is relayed over the node link to the node that plays
//! it; media goes between the browser and the node over ICE.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::{BROWSER_QUEUE, ClientLaunch, Gateway, PlacedState, STEREO, lock};
use crate::cluster::protocol::GatewayMessage;
use crate::session::LaunchParams;

/// What a node sends a browser's page through the gateway.
#[derive(Debug)]
pub enum ToPage {
    /// A signalling message.
    Text(String),
    /// Ping the browser.
    Ping,
    /// The node is done with the page (it said why first).
    Close,
}

/// A browser's signalling channel to the node that plays its session.
#[derive(Debug)]
pub struct BrowserChannel {
    /// The channel's number.
    pub channel: u64,
    /// The session.
    pub session: u32,
    /// Whether the session was resumed rather than launched.
    pub resumed: bool,
    /// The app's title.
    pub app: String,
    /// What the node sends the page; closed without [`ToPage::Close`]: the node went away.
    pub from_node: mpsc::Receiver<ToPage>,
    /// The node's link.
    pub to_node: mpsc::Sender<GatewayMessage>,
}

/// What a browser asks to play.
#[derive(Debug, Clone, Copy)]
pub struct BrowserRequest {
    /// The app.
    pub app_id: u32,
    /// Stream width.
    pub width: u32,
    /// Stream height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// kbit/s asked for.
    pub bitrate_kbps: Option<u32>,
}

impl Gateway {
    /// A paired browser's play: resumes its session or places a new one, then opens a
    /// signalling channel to the session's node. Browser sessions take a port set like any
    /// other (it keeps one table), but nothing is forwarded: their media goes over ICE.
    pub async fn open_browser(
        &self,
        client_id: &str,
        client_ip: IpAddr,
        front_ip: IpAddr,
        app: &str,
        request: BrowserRequest,
    ) -> Result<BrowserChannel, String> {
        let (session, resumed) = match self.session_of(client_id) {
            Some(session) if session.app_id != request.app_id => {
                return Err(format!(
                    "{} is running for this browser: quit it before starting another app",
                    session.app
                ));
            }
            Some(session) if session.state == PlacedState::Launching => {
                return Err(format!("{} is still starting", session.app));
            }
            Some(session) => (session, true),
            None => {
                let launch = ClientLaunch {
                    client_id: client_id.to_owned(),
                    client_ip,
                    front_ip,
                    app_id: request.app_id,
                    app: app.to_owned(),
                    params: LaunchParams {
                        mode: Some((request.width, request.height, request.fps)),
                        surround_info: STEREO,
                        key: None,
                    },
                };
                (self.place(launch).await.map_err(|e| e.to_string())?, false)
            }
        };
        let channel = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (to_page, from_node) = mpsc::channel(BROWSER_QUEUE);
        let to_node = {
            let mut table = lock(&self.table);
            let node = table
                .nodes
                .get_mut(&session.node)
                .ok_or("the session's node went away")?;
            node.browsers.insert(channel, to_page);
            node.link.clone()
        };
        let open = GatewayMessage::BrowserOpen(Box::new(crate::cluster::protocol::BrowserOpen {
            channel,
            session: session.id,
            client_id: client_id.to_owned(),
            launched: !resumed,
            width: request.width,
            height: request.height,
            fps: request.fps,
            bitrate_kbps: request.bitrate_kbps,
        }));
        to_node
            .send(open)
            .await
            .map_err(|_| "the session's node went away".to_owned())?;
        Ok(BrowserChannel {
            channel,
            session: session.id,
            resumed,
            app: session.app,
            from_node,
            to_node,
        })
    }

    /// A node's message for a browser's page (a page that fell behind by a whole queue is
    /// closed: signalling is a few messages, so it is gone).
    pub(crate) fn to_page(&self, node: u32, channel: u64, message: ToPage) {
        let mut table = lock(&self.table);
        let Some(entry) = table.nodes.get_mut(&node) else {
            return;
        };
        let closing = matches!(message, ToPage::Close);
        let delivered = entry
            .browsers
            .get(&channel)
            .is_some_and(|page| page.try_send(message).is_ok());
        if closing || !delivered {
            entry.browsers.remove(&channel);
        }
    }

    /// The browser's page left; its node's entry is dropped (the handler told the node).
    pub fn browser_gone(&self, session_node: Option<u32>, channel: u64) {
        let mut table = lock(&self.table);
        let nodes = table.nodes.iter_mut();
        for (id, entry) in nodes {
            if session_node.is_none_or(|node| node == *id) {
                entry.browsers.remove(&channel);
            }
        }
    }
}
