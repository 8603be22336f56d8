//! The leash's driver: log in and mount, then open bands whenever the queen
//! asks, until the leash ends or the publication is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_hlhv::cell::{Leash, LeashConfig, LeashEvent, Session};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::band::Bands;
use crate::conn::FrameStream;
use crate::error::HlhvError;
use crate::publisher::Shared;

/// How long a closing cell waits to hand its `Unmount` to the queen.
const UNMOUNT_GRACE: Duration = Duration::from_secs(2);

/// A logged-in, mounted leash.
pub(crate) struct LoggedIn {
    pub stream: FrameStream,
    pub leash: Leash,
    pub session: Session,
}

/// Dials the queen, logs in with the cell key and mounts.
pub(crate) async fn login(shared: &Shared) -> Result<LoggedIn, HlhvError> {
    let mut stream = shared.dialer.dial().await?;
    let mut leash = Leash::new(
        Instant::now(),
        LeashConfig {
            key: shared.config.key.expose().to_owned(),
            host: shared.checked.mount_host.clone(),
            path: shared.checked.mount_path.clone(),
            login_timeout: shared.config.login_timeout,
        },
    );
    loop {
        if let Some(bytes) = leash.poll_transmit() {
            stream.write(&bytes).await?;
        }
        if let Some(LeashEvent::Accepted(session)) = leash.poll_event() {
            // The Mount went out with the transmit above.
            return Ok(LoggedIn {
                stream,
                leash,
                session,
            });
        }
        let deadline = leash
            .poll_timeout()
            .expect("a leash logging in has a deadline");
        tokio::select! {
            frame = stream.read_frame() => match frame {
                Ok(Some(frame)) => leash.handle_frame(frame)?,
                Ok(None) => return Err(HlhvError::LoginRefused),
                // Reset right after the IAm: the queen refused it.
                Err(HlhvError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(HlhvError::LoginRefused);
                }
                Err(e) => return Err(e),
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                leash.handle_timeout(Instant::now())?;
            }
        }
    }
}

/// Serves the leash until it ends; then stops every band and publishes why
/// in `ended`.
pub(crate) async fn run(
    logged_in: LoggedIn,
    bands: Arc<Bands>,
    cancel: CancellationToken,
    ended: watch::Sender<Option<String>>,
) {
    let LoggedIn {
        mut stream,
        mut leash,
        ..
    } = logged_in;
    let reason = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                leash.unmount();
                if let Some(bytes) = leash.poll_transmit() {
                    let _ = tokio::time::timeout(UNMOUNT_GRACE, async {
                        let _ = stream.write(&bytes).await;
                        stream.shutdown().await;
                    })
                    .await;
                }
                break "unmounted and closed".to_owned();
            }
            frame = stream.read_frame() => match frame {
                Ok(Some(frame)) => {
                    if let Err(e) = leash.handle_frame(frame) {
                        break format!("the queen broke the protocol: {e}");
                    }
                }
                Ok(None) => break "the queen closed the leash".to_owned(),
                Err(e) => break format!("the leash broke: {e}"),
            },
        }
        while let Some(event) = leash.poll_event() {
            if let LeashEvent::NeedBands(count) = event {
                bands.open(count);
            }
        }
    };
    cancel.cancel();
    tracing::info!(reason = %reason, "leash ended");
    ended.send_replace(Some(reason));
}
