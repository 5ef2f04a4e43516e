//! Stream helpers shared by the node and the client: reading exactly one frame, and
//! splicing two byte streams while counting what moved.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::wire::{self, Frame, MAX_FRAME, WireError};

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameReadError {
    /// The stream ended or failed.
    #[error("the stream ended: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a frame.
    #[error("malformed frame: {0}")]
    Wire(#[from] WireError),
    /// Nothing arrived in time.
    #[error("no frame within {0:?}")]
    Timeout(Duration),
}

/// Reads exactly one frame, and not a byte more, so that what follows on the stream
/// (a flow's data) stays in the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    input: &mut R,
    within: Duration,
) -> Result<Frame, FrameReadError> {
    tokio::time::timeout(within, read_frame_inner(input))
        .await
        .map_err(|_| FrameReadError::Timeout(within))?
}

async fn read_frame_inner<R: AsyncRead + Unpin>(input: &mut R) -> Result<Frame, FrameReadError> {
    let mut head = [0u8; 2];
    input.read_exact(&mut head).await?;
    let len_size = 1usize << (head[1] >> 6);
    let mut buf = Vec::with_capacity(16);
    buf.extend_from_slice(&head);
    if len_size > 1 {
        let mut rest = vec![0u8; len_size - 1];
        input.read_exact(&mut rest).await?;
        buf.extend_from_slice(&rest);
    }
    let (len, _) = wire::get_varint(&buf[1..]).ok_or(WireError::Short)?;
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len).into());
    }
    let start = buf.len();
    buf.resize(start + len as usize, 0);
    input.read_exact(&mut buf[start..]).await?;
    match wire::decode(&buf)? {
        Some((frame, used)) if used == buf.len() => Ok(frame),
        _ => Err(WireError::Short.into()),
    }
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    output: &mut W,
    frame: &Frame,
) -> std::io::Result<()> {
    output.write_all(&wire::encode(frame)).await
}

/// Bytes moved in each direction of a spliced flow, shared with whoever meters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client to the other side.
    pub up: AtomicU64,
    /// Other side to the client.
    pub down: AtomicU64,
}

/// Copies both ways until both sides finish, counting bytes as they are written;
/// each side's end is passed on as a shutdown of the other.
pub async fn splice<CR, CW, OR, OW>(
    mut client_read: CR,
    mut client_write: CW,
    mut other_read: OR,
    mut other_write: OW,
    counters: Arc<Counters>,
) where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    OR: AsyncRead + Unpin,
    OW: AsyncWrite + Unpin,
{
    let up = async {
        copy_counting(&mut client_read, &mut other_write, &counters.up).await;
        let _ = other_write.shutdown().await;
    };
    let down = async {
        copy_counting(&mut other_read, &mut client_write, &counters.down).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

async fn copy_counting<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    from: &mut R,
    to: &mut W,
    counter: &AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
