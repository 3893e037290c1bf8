//! Call slots kept by the media endpoint's registry for voice sessions over other transports
//! (a WebSocket session), so one count covers every call.

use tokio::sync::{mpsc, oneshot};

use super::{command::Command, registry::CreateError};
use crate::core::{
    auth::Caller,
    slots::{CallSlot, SlotError},
};

impl From<CreateError> for SlotError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Draining => Self::Draining,
            other => Self::Full(other.to_string()),
        }
    }
}

/// Asks the endpoint for a slot for `caller`.
pub(crate) async fn reserve(
    commands: &mpsc::Sender<Command>,
    caller: Caller,
) -> Result<CallSlot, SlotError> {
    let user_id = caller.user_id.clone();
    let (reply, answer) = oneshot::channel();
    commands
        .send(Command::Reserve { caller, reply })
        .await
        .map_err(|_| SlotError::Unavailable)?;
    answer.await.map_err(|_| SlotError::Unavailable)??;
    Ok(CallSlot::new(Held {
        commands: commands.clone(),
        user_id,
    }))
}

/// A slot the registry counts until this is dropped.
struct Held {
    commands: mpsc::Sender<Command>,
    user_id: String,
}

impl Drop for Held {
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
