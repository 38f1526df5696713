//! Tests of the browser stream: a real `webrtcbin` pair, ICE URL forms, candidate filters.

use std::time::{Duration, Instant};

use gst_webrtc::WebRTCSDPType;

use super::events::*;
use super::transport::*;
use super::*;

/// What `pipeline::webrtc_description` builds, with test sources instead of the desktop
/// and the app's audio.
fn test_description() -> String {
    format!(
        "webrtcbin name={WEBRTC_BIN} bundle-policy=max-bundle latency=0 \
         videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! \
         rtph264pay name={VIDEO_RTP} config-interval=-1 aggregate-mode=zero-latency mtu=1200 ! \
         application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000 ! \
         {WEBRTC_BIN}. \
         audiotestsrc is-live=true ! opusenc ! rtpopuspay name={AUDIO_RTP} mtu=1200 ! \
         application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! \
         {WEBRTC_BIN}."
    )
}

/// This process's threads that belong to a webrtcbin named [`WEBRTC_BIN`] (its
/// peer-connection and ICE threads).
fn webrtc_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with(WEBRTC_BIN))
        .collect()
}

/// The host address of an ICE candidate webrtcbin holds a socket for, and whether it is TCP
/// (`candidate:1 1 UDP 2015363327 192.0.2.1 50000 typ host`; active TCP ones, port 9,
/// have none).
fn bound_address(candidate: &str) -> Option<(std::net::SocketAddr, bool)> {
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    let tcp = fields.get(2)?.eq_ignore_ascii_case("tcp");
    let ip: std::net::IpAddr = fields.get(4)?.parse().ok()?;
    let port: u16 = fields.get(5)?.parse().ok()?;
    // A link-local IPv6 address binds only with its interface's scope, which the
    // candidate does not carry.
    let link_local = matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
    (port != 9 && !link_local && fields.get(7) == Some(&"host")).then_some(((ip, port).into(), tcp))
}

/// Whether this process could bind `address` (no socket holds it any more).
fn is_free((address, tcp): (std::net::SocketAddr, bool)) -> bool {
    if tcp {
        std::net::TcpListener::bind(address).is_ok()
    } else {
        std::net::UdpSocket::bind(address).is_ok()
    }
}

/// Waits up to 10 s for `done`.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// A host candidate as Chromium sends it: its address hidden behind an mDNS name.
const MDNS_CANDIDATE: &str = "candidate:3011226364 1 udp 2113937151 \
                              0b9e6c1e-5f3c-4a8e-9a43-6f0a1c2d3e4f.local 54321 typ host \
                              generation 0 network-cost 999";

/// A browser's side of the peer connection: a receive-only webrtcbin named `browser` that
/// answers the host's offer and opens nothing itself. Its candidates go to `candidates`.
struct Browser {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    channel: Arc<Mutex<Option<WebRTCDataChannel>>>,
    messages: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    fn new(candidates: std::sync::mpsc::Sender<(u32, String)>) -> Self {
        let pipeline = gst::Pipeline::with_name("browser-pipeline");
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("browser")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .unwrap();
        pipeline.add(&webrtc).unwrap();
        let weak_pipeline = pipeline.downgrade();
        webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak_pipeline.upgrade() else {
                return;
            };
            let sink = gst::ElementFactory::make("fakesink")
                .property("async", false)
                .build()
                .unwrap();
            pipeline.add(&sink).unwrap();
            sink.sync_state_with_parent().unwrap();
            let _ = pad.link(&sink.static_pad("sink").unwrap());
        });
        webrtc.connect("on-ice-candidate", false, move |values| {
            let mline = values[1].get::<u32>().unwrap();
            let candidate = values[2].get::<String>().unwrap();
            let _ = candidates.send((mline, candidate));
            None
        });
        let channel: Arc<Mutex<Option<WebRTCDataChannel>>> = Arc::default();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let (opened, received) = (channel.clone(), messages.clone());
        webrtc.connect("on-data-channel", false, move |values| {
            let channel = values[1].get::<WebRTCDataChannel>().unwrap();
            let received = received.clone();
            channel.connect("on-message-string", false, move |values| {
                if let Ok(Some(text)) = values[1].get::<Option<String>>() {
                    lock(&received).push(text);
                }
                None
            });
            *lock(&opened) = Some(channel);
            None
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        Self {
            pipeline,
            webrtc,
            channel,
            messages,
        }
    }

    /// Takes the host's offer and returns the answer's SDP.
    fn answer(&self, offer: &str) -> String {
        let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).unwrap();
        let offer = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer);
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let answer = promise
            .get_reply()
            .unwrap()
            .get::<gst_webrtc::WebRTCSessionDescription>("answer")
            .unwrap();
        self.webrtc
            .emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
        answer.sdp().as_text().unwrap()
    }

    fn add_ice_candidate(&self, sdp_mline_index: u32, candidate: &str) {
        self.webrtc
            .emit_by_name::<()>("add-ice-candidate", &[&sdp_mline_index, &candidate]);
    }

    /// Sends `text` over the host's data channel once it is open; whether it was.
    fn send(&self, text: &str) -> bool {
        let channel = lock(&self.channel);
        let Some(channel) = channel.as_ref().filter(|channel| {
            channel.property::<gst_webrtc::WebRTCDataChannelState>("ready-state")
                == gst_webrtc::WebRTCDataChannelState::Open
        }) else {
            return false;
        };
        channel.emit_by_name::<()>("send-string", &[&Some(text)]);
        true
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[test]
fn dropping_a_connected_stream_frees_webrtcbin_its_threads_and_ice_sockets() {
    gst::init().unwrap();
    let network = WebRtcConfig {
        enabled: true,
        ice_servers: Vec::new(),
        min_port: 0,
        max_port: 0,
        min_bitrate_kbps: 500,
        max_bitrate_kbps: 20_000,
        audio_bitrate: 64_000,
    };
    let (events, mut from_host) = mpsc::channel(EVENT_QUEUE);
    let inputs: Arc<Mutex<Vec<String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let (stream, handle) =
        WebRtcStream::start(&test_description(), None, 30, &network, events).unwrap();
    stream.set_name("hati-webrtc-test");
    assert!(!webrtc_threads().is_empty(), "webrtcbin runs no thread");

    // Signalling, as the session relays it, until input arrives over the data channel and
    // the page has the host's message (connected: ICE, DTLS and SCTP up).
    let (browser_candidates, from_browser) = std::sync::mpsc::channel();
    let browser = Browser::new(browser_candidates);
    let mut candidates = Vec::new();
    let mut answered = false;
    let connected = wait_for(|| {
        while let Ok(event) = from_host.try_recv() {
            let signal = match event {
                BrowserEvent::Signal(signal) => signal,
                BrowserEvent::Input(text) => {
                    lock(&inputs).push(text);
                    continue;
                }
                BrowserEvent::Failed(message) => {
                    lock(&errors).push(message);
                    continue;
                }
                BrowserEvent::PeerGone | BrowserEvent::Closed(_) => continue,
            };
            match signal {
                HostSignal::Offer { sdp } => {
                    // Chromium hides its host addresses behind mDNS names, in the answer
                    // (once it gathered) and trickled.
                    let mut answer =
                        gst_sdp::SDPMessage::parse_buffer(browser.answer(&sdp).as_bytes()).unwrap();
                    answer
                        .media_mut(0)
                        .unwrap()
                        .add_attribute("candidate", MDNS_CANDIDATE.strip_prefix("candidate:"));
                    handle.set_answer(&answer.as_text().unwrap()).unwrap();
                    handle.add_ice_candidate(0, MDNS_CANDIDATE);
                    answered = true;
                }
                HostSignal::Ice {
                    candidate,
                    sdp_mline_index,
                } => {
                    browser.add_ice_candidate(sdp_mline_index, &candidate);
                    candidates.push(candidate);
                }
                _ => {}
            }
        }
        if answered {
            while let Ok((mline, candidate)) = from_browser.try_recv() {
                handle.add_ice_candidate(mline, &candidate);
            }
        }
        if lock(&inputs).is_empty() {
            browser.send(r#"{"t":"k"}"#);
        } else {
            stream.send_to_page(r#"{"rumble":[0,0]}"#);
        }
        stream.refresh_feedback();
        !lock(&inputs).is_empty() && !lock(&browser.messages).is_empty()
    });
    assert!(
        connected,
        "the browser did not connect (answered: {answered}, input: {:?}, errors: {:?}, \
         host candidates: {candidates:?})",
        lock(&inputs),
        lock(&errors)
    );
    assert!(
        lock(&errors).is_empty(),
        "pipeline errors: {:?}",
        lock(&errors)
    );
    let sockets: Vec<_> = candidates.iter().filter_map(|c| bound_address(c)).collect();
    assert!(
        sockets.iter().all(|&socket| !is_free(socket)),
        "an ICE candidate's socket is not bound: {candidates:?}"
    );

    let pipeline = stream.pipeline.downgrade();
    let webrtc = stream.webrtc.downgrade();
    let ice_agent = stream
        .webrtc
        .property::<gst::glib::Object>("ice-agent")
        .downgrade();
    let channel = lock(&stream.channel).as_ref().map(|c| c.downgrade());
    stream.close(StreamClosed::Paused);
    let mut last = None;
    while let Ok(event) = from_host.try_recv() {
        last = Some(event);
    }
    assert!(
        matches!(last, Some(BrowserEvent::Closed(StreamClosed::Paused))),
        "the signalling task hears last why its stream closed: {last:?}"
    );
    assert!(
        matches!(handle.set_answer("v=0"), Err(AnswerError::NoBrowserStream)),
        "the handle outlives the stream harmlessly"
    );

    // All at once: the session publishes `session_ended` right after the drop.
    assert!(
        pipeline.upgrade().is_none() && webrtc.upgrade().is_none(),
        "the pipeline or webrtcbin outlived the stream (pipeline refs: {:?}, webrtcbin \
         refs: {:?})",
        pipeline.upgrade().map(|p| p.ref_count() - 1),
        webrtc.upgrade().map(|w| w.ref_count() - 1),
    );
    assert!(
        ice_agent.upgrade().is_none(),
        "webrtcbin's ICE agent outlived the stream ({:?} refs)",
        ice_agent.upgrade().map(|a| a.ref_count() - 1)
    );
    assert!(
        channel.is_some_and(|c| c.upgrade().is_none()),
        "the data channel outlived the stream"
    );
    // webrtcbin joins its thread when it stops; the kernel may list a joined thread in
    // /proc/self/task a moment longer (seen under load in CI), so give /proc up to a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !webrtc_threads().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        webrtc_threads().is_empty(),
        "webrtcbin's threads outlived the stream: {:?}",
        webrtc_threads()
    );
    assert!(
        sockets.iter().all(|&socket| is_free(socket)),
        "webrtcbin's ICE sockets outlived the stream: {:?}",
        sockets
            .iter()
            .filter(|&&socket| !is_free(socket))
            .collect::<Vec<_>>()
    );
    drop(browser);
}

#[test]
fn mdns_candidates_are_recognised_and_removed_from_an_answer() {
    assert!(is_mdns_candidate(MDNS_CANDIDATE));
    assert!(is_mdns_candidate(
        "a=candidate:1 1 UDP 2113937151 A1B2.LOCAL 50000 typ host"
    ));
    assert!(is_mdns_candidate(
        "candidate:1 1 tcp 1 host.local. 9 typ host tcptype active"
    ));
    assert!(!is_mdns_candidate(
        "candidate:1 1 udp 2113937151 192.0.2.7 50000 typ host"
    ));
    assert!(!is_mdns_candidate(
        "candidate:1 1 udp 1 2001:db8::1 50000 typ srflx raddr local rport 0"
    ));
    assert!(!is_mdns_candidate("candidate:1 1 udp 1 .local"));
    assert!(!is_mdns_candidate(
        "candidate:1 1 udp 1 aéééé 5000 typ host"
    ));
    assert!(!is_mdns_candidate(""));

    gst::init().unwrap();
    let mut answer = gst_sdp::SDPMessage::parse_buffer(
        b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
          m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
          a=candidate:1 1 udp 2113937151 0b9e.local 50000 typ host\r\n\
          a=candidate:2 1 udp 2113937151 192.0.2.7 50001 typ host\r\n\
          a=candidate:3 1 udp 2113937151 1c2d.local 50002 typ host\r\n\
          a=end-of-candidates\r\n",
    )
    .unwrap();
    remove_mdns_candidates(&mut answer);
    let media = answer.media(0).unwrap();
    let left: Vec<_> = media
        .attributes()
        .map(|a| (a.key().to_owned(), a.value().map(str::to_owned)))
        .collect();
    assert_eq!(
        left,
        [
            ("mid".to_owned(), Some("0".to_owned())),
            (
                "candidate".to_owned(),
                Some("2 1 udp 2113937151 192.0.2.7 50001 typ host".to_owned())
            ),
            ("end-of-candidates".to_owned(), Some(String::new())),
        ]
    );
}

#[test]
fn only_the_data_channel_transport_counts_as_the_browser_leaving() {
    assert!(is_peer_transport("sctpenc"));
    assert!(is_peer_transport("sctpdec"));
    assert!(!is_peer_transport("x264enc"));
    assert!(!is_peer_transport("nicesink"));
}

#[test]
fn ice_urls_take_webrtcbin_form() {
    assert_eq!(
        gst_ice_url("stun:stun.example.net:3478", None, None),
        Some(IceUrl::Stun("stun://stun.example.net:3478".into()))
    );
    assert_eq!(
        gst_ice_url(
            "turn:turn.example.net:3478?transport=tcp",
            Some("hati"),
            Some("p@ss:word")
        ),
        Some(IceUrl::Turn(
            "turn://hati:p%40ss%3Aword@turn.example.net:3478?transport=tcp".into()
        ))
    );
    assert_eq!(gst_ice_url("http://example.net", None, None), None);
    assert_eq!(gst_ice_url("stun:", None, None), None);
    assert_eq!(gst_ice_url("nothing", None, None), None);
}
