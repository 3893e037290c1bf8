//! The tokio shell of one request stream: reads frames into the [`StreamCore`], runs the
//! request on the [`ReplyService`] and writes its events back, in order, as frames.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use protocol::{FrameDecoder, MAX_FRAME_LEN, ServerEvent};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use web_transport_quinn::{ReadError, RecvStream, SendStream};

use super::{
    ReplyService,
    codes::AppCode,
    stream_core::{Failure, FrameWriter, Step, StreamCore},
};
use crate::core::auth::CallerVerifier;

/// Told once a stream of its connection has authenticated and started a request.
pub(crate) type Authenticated = Arc<tokio::sync::Notify>;

/// What every stream of an endpoint shares.
pub(crate) struct StreamContext {
    pub(crate) verifier: Arc<dyn CallerVerifier>,
    pub(crate) service: Arc<dyn ReplyService>,
    pub(crate) start_timeout: Duration,
    pub(crate) event_queue: usize,
}

/// Whether the stream goes on after a step.
enum Flow {
    Go,
    Done,
}

/// One stream: its halves, its core, and its running reply if any.
struct Stream<'a> {
    send: SendStream,
    recv: RecvStream,
    core: StreamCore,
    writer: FrameWriter,
    ctx: &'a StreamContext,
    /// The reply's events, once it started.
    events: Option<mpsc::Receiver<ServerEvent>>,
    /// Cancels the reply when fired, or when the stream task ends for any reason.
    cancel: Option<DropGuard>,
    /// The connection's authentication deadline, satisfied by the first request that starts.
    authenticated: Authenticated,
}

/// Serves one client-opened bidirectional stream to its end. `draining`: the node takes no
/// new requests (the stream is refused with `server_draining`).
pub(crate) async fn serve(
    send: SendStream,
    recv: RecvStream,
    ctx: Arc<StreamContext>,
    draining: bool,
    authenticated: Authenticated,
) {
    let mut stream = Stream {
        send,
        recv,
        core: StreamCore::new(),
        writer: FrameWriter::new(),
        ctx: &ctx,
        events: None,
        cancel: None,
        authenticated,
    };
    if draining {
        let step = stream.core.on_draining();
        stream.apply(step).await;
        return;
    }
    stream.run().await;
}

impl Stream<'_> {
    async fn run(&mut self) {
        let mut decoder = FrameDecoder::new();
        let start_timeout = tokio::time::sleep(self.ctx.start_timeout);
        tokio::pin!(start_timeout);
        let mut reading = true;
        // Disarmed once it fires or the request starts: a finished sleep polls ready forever.
        let mut timing = true;
        loop {
            timing &= !self.core.started();
            let flow = tokio::select! {
                chunk = self.recv.read_chunk(MAX_FRAME_LEN, true), if reading => {
                    match chunk {
                        Ok(Some(chunk)) => self.on_bytes(&mut decoder, chunk.bytes).await,
                        Ok(None) => {
                            reading = false;
                            let step = self.core.on_peer_finished();
                            self.apply(step).await
                        }
                        Err(ReadError::Reset(_) | ReadError::InvalidReset(_)) => {
                            reading = false;
                            let step = self.core.on_peer_reset();
                            self.apply(step).await
                        }
                        // The connection is gone: nobody to answer.
                        Err(_) => Flow::Done,
                    }
                }
                event = recv_event(&mut self.events), if self.events.is_some() => match event {
                    Some(event) => self.write(&event).await,
                    // The service is done and every event is written: end the stream.
                    None => {
                        let _ = self.send.finish();
                        Flow::Done
                    }
                },
                () = &mut start_timeout, if timing => {
                    timing = false;
                    let step = self.core.on_start_timeout();
                    self.apply(step).await
                }
            };
            if let Flow::Done = flow {
                return;
            }
            if !reading && self.events.is_none() {
                // Nothing more can arrive and no reply runs.
                return;
            }
        }
    }

    async fn on_bytes(&mut self, decoder: &mut FrameDecoder, chunk: Bytes) -> Flow {
        decoder.push_bytes(chunk);
        loop {
            let step = match decoder.next_frame() {
                Ok(Some(frame)) => self.core.on_frame(&frame, &*self.ctx.verifier),
                Ok(None) => return Flow::Go,
                Err(error) => self.core.on_decode_error(&error),
            };
            if let Flow::Done = self.apply(step).await {
                return Flow::Done;
            }
        }
    }

    async fn apply(&mut self, step: Step) -> Flow {
        match step {
            Step::Continue => Flow::Go,
            Step::Send(event) => self.write(&event).await,
            Step::Start(start) => {
                // `notify_one` keeps a permit when the connection is not waiting right now.
                self.authenticated.notify_one();
                let (tx, rx) = mpsc::channel(self.ctx.event_queue);
                let cancel = CancellationToken::new();
                // Runs to its end on its own (a cancelled reply is still stored), so a stream
                // that dies mid-reply cancels it rather than cutting it short.
                tokio::spawn(self.ctx.service.reply(
                    start.caller,
                    start.token,
                    start.request,
                    tx,
                    cancel.clone(),
                ));
                self.events = Some(rx);
                self.cancel = Some(cancel.drop_guard());
                Flow::Go
            }
            Step::Cancel => {
                if let Some(guard) = self.cancel.take() {
                    // Fire the token; keep forwarding the reply's last events.
                    guard.disarm().cancel();
                }
                Flow::Go
            }
            Step::Fail(failure) => self.fail(failure).await,
        }
    }

    /// Ends the stream: the reply (if any) is cancelled and no longer forwarded, the client
    /// gets the `error` event and the end of the stream, and its remaining bytes are refused.
    async fn fail(&mut self, failure: Failure) -> Flow {
        let Failure { error, code } = failure;
        tracing::debug!(code = %code, message = %error.message, "QUIC stream refused");
        self.cancel = None;
        self.events = None;
        let _ = self.write(&ServerEvent::Error(error)).await;
        let _ = self.send.finish();
        let _ = self.recv.stop(code.0);
        Flow::Done
    }

    async fn write(&mut self, event: &ServerEvent) -> Flow {
        let wire = match self.writer.encode(event) {
            Ok(wire) => wire,
            Err(error) => {
                // The service produced an event the protocol refuses: a server bug.
                tracing::error!(%error, kind = event.type_name(), "unsendable QUIC event");
                let _ = self.send.reset(AppCode::INTERNAL.0);
                return Flow::Done;
            }
        };
        match self.send.write_chunk(wire).await {
            Ok(()) => Flow::Go,
            // STOP_SENDING or a lost connection: the client does not want the rest.
            Err(_) => Flow::Done,
        }
    }
}

async fn recv_event(events: &mut Option<mpsc::Receiver<ServerEvent>>) -> Option<ServerEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
