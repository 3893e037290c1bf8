//! The thin tokio shell around [`CallRegistry`]: owns the UDP sockets and one timer, feeds
//! datagrams, commands and timeouts in, sends datagrams out and fans call events out to each
//! call's bounded channels. One task for the whole node, whatever the number of calls.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::ReadBuf,
    net::UdpSocket,
    sync::{mpsc, watch},
    time::Instant,
};

use super::{
    command::{Command, MediaCensus},
    handle::{CallCounters, CallHandle, CallHandler, CallSender},
    registry::{CallRegistry, CreateError, RegistryOutput, RegistrySettings},
    types::{CallEvent, CallState, CloseReason},
};
use crate::core::{
    auth::Caller,
    config::Config,
    error::Error,
    types::{CallId, DrainPhase},
    voice::Admission,
};

/// Commands queued before senders wait.
const COMMAND_QUEUE: usize = 1024;
/// Largest datagram read; WebRTC keeps packets under ~1200 bytes, DTLS flights a bit more.
const MAX_DATAGRAM: usize = 2048;

/// A running media endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) advertised: Vec<SocketAddr>,
    /// Calls live on the node, updated by the driver as they come and go.
    pub(crate) active_calls: watch::Receiver<usize>,
}

impl Endpoint {
    /// Binds every `gateway.udp_listen` socket and spawns the driver task.
    pub(crate) async fn start(
        config: &Config,
        handler: Arc<dyn CallHandler>,
        drain: watch::Receiver<DrainPhase>,
    ) -> Result<Self, Error> {
        let mut sockets = Vec::new();
        let mut advertised = Vec::new();
        for &addr in &config.udp_listen {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })?;
            let local = socket
                .local_addr()
                .map_err(|source| Error::Bind { addr, source })?;
            if config.udp_socket_buffer_bytes > 0 {
                size_buffers(&socket, local, config.udp_socket_buffer_bytes);
            }
            advertised.push(
                config
                    .public_ip
                    .map_or(local, |ip| SocketAddr::new(ip, local.port())),
            );
            sockets.push(socket);
        }
        tracing::info!(?advertised, "WebRTC media endpoint listening");
        let settings = RegistrySettings {
            max_calls: config.max_calls,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            disconnect_timeout: Duration::from_secs(config.disconnect_timeout_secs),
            max_event_bytes: config.max_event_bytes,
        };
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (active_tx, active_calls) = watch::channel(0);
        let driver = Driver {
            registry: CallRegistry::new(settings, advertised.clone()),
            sockets,
            handler,
            commands: tx.downgrade(),
            calls: HashMap::new(),
            audio_queue: config.inbound_audio_queue,
            message_queue: config.event_queue,
            active_calls: active_tx,
            drain,
            send_failures: 0,
        };
        tokio::spawn(driver.run(rx));
        Ok(Self {
            commands: tx,
            advertised,
            active_calls,
        })
    }
}

/// The channels of one live call.
struct CallChannels {
    audio: mpsc::Sender<super::types::InboundOpus>,
    messages: mpsc::Sender<String>,
    state: watch::Sender<CallState>,
    events_open: watch::Sender<bool>,
    counters: Arc<CallCounters>,
}

struct Driver {
    registry: CallRegistry,
    sockets: Vec<UdpSocket>,
    handler: Arc<dyn CallHandler>,
    /// Weak, so the driver stops once the gateway and every call handle are gone.
    commands: mpsc::WeakSender<Command>,
    calls: HashMap<CallId, CallChannels>,
    audio_queue: usize,
    message_queue: usize,
    active_calls: watch::Sender<usize>,
    /// Handed to every call's sender.
    drain: watch::Receiver<DrainPhase>,
    send_failures: u64,
}

enum Wake {
    Command(Command),
    Datagram(io::Result<(usize, SocketAddr, usize)>),
    Timer,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let idle = Duration::from_secs(3600);
        let sleep = tokio::time::sleep(idle);
        tokio::pin!(sleep);
        loop {
            let deadline = self
                .registry
                .poll_timeout()
                .map_or_else(|| Instant::now() + idle, Instant::from_std);
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let sockets = &self.sockets;
            let wake = tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => Wake::Command(c),
                    None => break,
                },
                received = std::future::poll_fn(|cx| poll_recv_any(cx, sockets, &mut buf)) => {
                    Wake::Datagram(received)
                }
                () = &mut sleep => Wake::Timer,
            };
            let now = std::time::Instant::now();
            match wake {
                Wake::Command(c) => self.on_command(now, c),
                Wake::Datagram(Ok((socket, source, len))) => {
                    self.registry
                        .handle_datagram(now, socket, source, &buf[..len]);
                }
                Wake::Datagram(Err(e)) => {
                    // Unconnected UDP sockets only report transient errors (ICMP echoes).
                    tracing::debug!(error = %e, "UDP receive error");
                }
                Wake::Timer => self.registry.handle_timeout(now),
            }
            self.flush();
        }
        self.registry.close_all(std::time::Instant::now());
        self.flush();
        tracing::info!("WebRTC media endpoint stopped");
    }

    fn on_command(&mut self, now: std::time::Instant, command: Command) {
        match command {
            Command::Create {
                caller,
                offer,
                admission,
                reply,
            } => {
                // Signaling checks too; this closes the race with an offer already queued
                // when the drain began.
                if *self.drain.borrow() != DrainPhase::Serving {
                    let _ = reply.send(Err(CreateError::Draining));
                    return;
                }
                let result = self.registry.create_call(
                    now,
                    &caller.user_id,
                    caller.max_concurrent_calls,
                    &offer,
                );
                let created = result.as_ref().ok().map(|c| c.id);
                if let Some(id) = created {
                    self.open_channels(id, caller, admission);
                }
                if reply.send(result).is_err()
                    && let Some(id) = created
                {
                    // The HTTP client left before getting its answer: nobody can connect.
                    let _ = self
                        .registry
                        .hang_up(now, id, None, CloseReason::CallerHungUp);
                }
            }
            Command::Reserve { caller, reply } => {
                let result = if *self.drain.borrow() == DrainPhase::Serving {
                    self.registry
                        .reserve_slot(&caller.user_id, caller.max_concurrent_calls)
                } else {
                    Err(CreateError::Draining)
                };
                let reserved = result.is_ok();
                if reply.send(result).is_err() && reserved {
                    // The session gave up waiting: nobody holds the slot.
                    self.registry.release_slot(&caller.user_id);
                }
                self.publish_active();
            }
            Command::Release { user_id } => {
                self.registry.release_slot(&user_id);
                self.publish_active();
            }
            Command::Candidates {
                id,
                user_id,
                frag,
                reply,
            } => {
                let _ = reply.send(self.registry.add_candidates(now, id, &user_id, &frag));
            }
            Command::HangUp { id, user_id, reply } => {
                let reason = if user_id.is_some() {
                    CloseReason::CallerHungUp
                } else {
                    CloseReason::ServerHungUp
                };
                let result = self.registry.hang_up(now, id, user_id.as_deref(), reason);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Audio {
                id,
                payload,
                samples,
            } => {
                let result = self.registry.write_audio(now, id, &payload, samples);
                if let Some(ch) = self.calls.get(&id) {
                    match result {
                        Ok(()) => ch.counters.audio_packets_out.fetch_add(1, Relaxed),
                        Err(_) => ch.counters.audio_refused_out.fetch_add(1, Relaxed),
                    };
                }
            }
            Command::HangUpAll { reply } => {
                let live = self.registry.len();
                self.registry.close_all(now);
                let _ = reply.send(live);
            }
            Command::Census { reply } => {
                let _ = reply.send(MediaCensus {
                    registry: self.registry.tables(),
                    call_channels: self.calls.len(),
                });
            }
            Command::Message { id, text } => match self.registry.send_text(now, id, &text) {
                Ok(()) => {
                    if let Some(ch) = self.calls.get(&id) {
                        ch.counters.messages_out.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => tracing::debug!(call = %id, error = %e, "message not sent"),
            },
        }
    }

    fn open_channels(&mut self, id: CallId, caller: Caller, admission: Admission) {
        let (audio_tx, audio_rx) = mpsc::channel(self.audio_queue);
        let (messages_tx, messages_rx) = mpsc::channel(self.message_queue);
        let (state_tx, state_rx) = watch::channel(CallState::Connecting);
        let (events_tx, events_rx) = watch::channel(false);
        let counters = Arc::new(CallCounters::default());
        self.calls.insert(
            id,
            CallChannels {
                audio: audio_tx,
                messages: messages_tx,
                state: state_tx,
                events_open: events_tx,
                counters: counters.clone(),
            },
        );
        self.publish_active();
        let Some(commands) = self.commands.upgrade() else {
            return;
        };
        self.handler.on_call(CallHandle {
            id,
            caller,
            admission,
            audio: audio_rx,
            messages: messages_rx,
            sender: CallSender {
                id,
                commands,
                state: state_rx,
                events_open: events_rx,
                drain: self.drain.clone(),
                counters,
            },
        });
    }

    /// Publishes the node's live calls: WebRTC calls plus slot-holding WebSocket sessions,
    /// so a drain waits for both.
    fn publish_active(&self) {
        self.active_calls
            .send_replace(self.calls.len() + self.registry.tables().sessions);
    }

    /// Sends what the registry queued and hands events to the calls' channels.
    fn flush(&mut self) {
        while let Some(output) = self.registry.poll_output() {
            match output {
                RegistryOutput::Transmit {
                    socket,
                    destination,
                    contents,
                } => {
                    let Some(s) = self.sockets.get(socket) else {
                        continue;
                    };
                    // A full socket buffer drops the datagram, as the network would; RTP,
                    // SCTP and DTLS all recover from loss.
                    if let Err(e) = s.try_send_to(&contents, destination) {
                        self.send_failures += 1;
                        if self.send_failures.is_power_of_two() {
                            tracing::warn!(error = %e, failures = self.send_failures, "UDP send failed");
                        }
                    }
                }
                RegistryOutput::Event(id, event) => self.dispatch(id, event),
            }
        }
    }

    fn dispatch(&mut self, id: CallId, event: CallEvent) {
        let Some(ch) = self.calls.get(&id) else {
            return;
        };
        match event {
            CallEvent::Connected => {
                ch.state.send_replace(CallState::Connected);
            }
            CallEvent::Audio(packet) => {
                ch.counters.audio_packets_in.fetch_add(1, Relaxed);
                ch.counters
                    .audio_bytes_in
                    .fetch_add(packet.payload.len() as u64, Relaxed);
                if let Err(mpsc::error::TrySendError::Full(_)) = ch.audio.try_send(packet) {
                    ch.counters.audio_dropped_in.fetch_add(1, Relaxed);
                }
            }
            CallEvent::EventsOpen => {
                tracing::debug!(call = %id, "events channel open");
                ch.events_open.send_replace(true);
            }
            CallEvent::EventsClosed => {
                tracing::debug!(call = %id, "events channel closed");
                ch.events_open.send_replace(false);
            }
            CallEvent::Text(text) => {
                ch.counters.messages_in.fetch_add(1, Relaxed);
                if let Err(mpsc::error::TrySendError::Full(_)) = ch.messages.try_send(text) {
                    ch.counters.messages_dropped_in.fetch_add(1, Relaxed);
                }
            }
            CallEvent::Closed(reason) => {
                if let Some(ch) = self.calls.remove(&id) {
                    ch.state.send_replace(CallState::Closed(reason));
                }
                self.publish_active();
            }
        }
    }
}

/// Asks the kernel for `bytes` of receive and send buffer on a media socket and returns what
/// it granted (Linux reports twice the usable size, which covers its bookkeeping). A shortfall
/// is logged, not fatal: the node works, it just drops packets sooner under a burst.
fn size_buffers(socket: &UdpSocket, local: SocketAddr, bytes: usize) -> (usize, usize) {
    let sock = socket2::SockRef::from(socket);
    let set = sock
        .set_recv_buffer_size(bytes)
        .and_then(|()| sock.set_send_buffer_size(bytes));
    if let Err(error) = set {
        tracing::warn!(%local, %error, "media socket buffers not resized");
    }
    let granted = (
        sock.recv_buffer_size().unwrap_or(0),
        sock.send_buffer_size().unwrap_or(0),
    );
    if granted.0 < bytes || granted.1 < bytes {
        tracing::warn!(
            %local,
            asked = bytes,
            recv = granted.0,
            send = granted.1,
            "the kernel granted smaller media socket buffers; raise net.core.rmem_max and \
             net.core.wmem_max to at least gateway.udp_socket_buffer_bytes"
        );
    }
    granted
}

/// Polls every socket once for a datagram.
fn poll_recv_any(
    cx: &mut Context<'_>,
    sockets: &[UdpSocket],
    buf: &mut [u8],
) -> Poll<io::Result<(usize, SocketAddr, usize)>> {
    for (i, socket) in sockets.iter().enumerate() {
        let mut read = ReadBuf::new(&mut *buf);
        if let Poll::Ready(result) = socket.poll_recv_from(cx, &mut read) {
            let len = read.filled().len();
            return Poll::Ready(result.map(|source| (i, source, len)));
        }
    }
    Poll::Pending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn media_sockets_get_the_buffers_asked_for_up_to_the_kernel_cap() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let cap = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0)
        };
        let asked = 1 << 20;
        let (recv, send) = size_buffers(&socket, local, asked);
        assert!(recv >= asked.min(cap("rmem_max")), "receive buffer {recv}");
        assert!(send >= asked.min(cap("wmem_max")), "send buffer {send}");
    }
}
