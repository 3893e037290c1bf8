//! A call slot held by a voice session that is not a WebRTC call (a WebSocket session), so
//! `max_concurrent_calls`, the node's `max_calls` and the drain count it like a call.

use tokio::sync::{mpsc, oneshot};

use super::{endpoint::Command, registry::CreateError};
use crate::auth::Caller;

/// Why a slot could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SlotError {
    /// The registry refused: the caller's or the node's limit, or a drain.
    #[error(transparent)]
    Refused(#[from] CreateError),
    /// The media endpoint could not start or has stopped.
    #[error("the gateway's call registry is not running")]
    Unavailable,
}

/// One reserved slot; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct CallSlot {
    commands: mpsc::Sender<Command>,
    user_id: String,
}

impl CallSlot {
    /// Asks the endpoint for a slot for `caller`.
    pub(crate) async fn reserve(
        commands: &mpsc::Sender<Command>,
        caller: Caller,
    ) -> Result<Self, SlotError> {
        let user_id = caller.user_id.clone();
        let (reply, answer) = oneshot::channel();
        commands
            .send(Command::Reserve { caller, reply })
            .await
            .map_err(|_| SlotError::Unavailable)?;
        answer.await.map_err(|_| SlotError::Unavailable)??;
        Ok(Self {
            commands: commands.clone(),
            user_id,
        })
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let release = Command::Release {
            user_id: std::mem::take(&mut self.user_id),
        };
        // Drop cannot wait: a full command queue (a busy endpoint) gets the release from a
        // small task instead, so the slot is never lost.
        if let Err(mpsc::error::TrySendError::Full(release)) = self.commands.try_send(release)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let commands = self.commands.clone();
            runtime.spawn(async move {
                let _ = commands.send(release).await;
            });
        }
    }
}
