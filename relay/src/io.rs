//! Stream helpers shared by the node and the client: reading exactly one frame, and
//! splicing two byte streams through a gate that limits, meters and charges them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use receipt::{SignedReceipt, VerifiedReceipt};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{Notify, mpsc};

use crate::limits::{Period, Quota, QuotaExceeded, TokenBucket};
use crate::metering::{Meter, MeterState, PromiseError};
use crate::wire::{self, Frame, MAX_FRAME, Status, WireError};

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

/// A rate limit shared by flows: a token bucket behind a lock.
pub type SharedBucket = Arc<Mutex<TokenBucket>>;

/// A token bucket for `rate` bytes per second (0: unlimited) with 100 ms of burst.
pub fn bucket(rate: u64) -> Option<SharedBucket> {
    (rate > 0).then(|| {
        Arc::new(Mutex::new(TokenBucket::new(
            rate,
            rate / 10,
            Instant::now(),
        )))
    })
}

/// What a flow's bytes pass through on their way: rate limits (by back-pressure: a
/// flow waits for tokens before it reads on), the session's payment allowance, and
/// the counters that meter them.
#[derive(Clone, Default)]
pub struct Gate {
    /// Counters to add every byte to (the node's, the session's).
    pub counters: Vec<Arc<Counters>>,
    /// Buckets limiting client-to-destination bytes.
    pub up: Vec<SharedBucket>,
    /// Buckets limiting destination-to-client bytes.
    pub down: Vec<SharedBucket>,
    /// The session's payment allowance, when the node charges.
    pub allowance: Option<Arc<Allowance>>,
    /// The node's day and month quotas, when set.
    pub quota: Option<Arc<QuotaGate>>,
}

/// The node's day and month quotas, shared by every flow: a flow ends when a quota is
/// used up, and new flows are refused with `quota_exceeded`.
pub struct QuotaGate {
    quota: Mutex<Quota>,
}

impl QuotaGate {
    /// Quotas in bytes a day and a month (0: none).
    pub fn new(daily: u64, monthly: u64) -> Self {
        Self {
            quota: Mutex::new(Quota::new(daily, monthly, Self::now())),
        }
    }

    fn now() -> Period {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Period::utc(secs)
    }

    /// Which quota is used up, if any.
    pub fn exceeded(&self) -> Option<QuotaExceeded> {
        self.quota
            .lock()
            .ok()
            .and_then(|mut q| q.exceeded(Self::now()))
    }

    /// What was used, and in which period: to save across a restart.
    pub fn used(&self) -> (Period, u64, u64) {
        let now = Self::now();
        let (day, month) = self.quota.lock().map_or((0, 0), |mut q| q.used(now));
        (now, day, month)
    }

    /// Continues from what a previous run used (see `used`).
    pub fn restore(&self, saved: Period, day_used: u64, month_used: u64) {
        if let Ok(mut q) = self.quota.lock() {
            q.restore(saved, day_used, month_used, Self::now());
        }
    }

    /// The share of the tighter quota used, in percent.
    pub fn percent_used(&self) -> u32 {
        self.quota
            .lock()
            .map_or(0, |mut q| q.percent_used(Self::now()))
    }

    fn take(&self, want: u64) -> u64 {
        self.quota
            .lock()
            .map_or(0, |mut q| q.take(Self::now(), want))
    }

    fn refund(&self, bytes: u64) {
        if let Ok(mut q) = self.quota.lock() {
            q.refund(Self::now(), bytes);
        }
    }
}

impl Gate {
    /// Lets one UDP datagram through, or says to drop it: a datagram is never held
    /// back, so one that exceeds a rate cap, the quota or the payment allowance is
    /// dropped. Counted when admitted.
    pub fn admit_datagram(&self, up: bool, bytes: u64) -> bool {
        if let Some(allowance) = &self.allowance
            && allowance.paused()
        {
            return false;
        }
        let buckets = if up { &self.up } else { &self.down };
        let now = Instant::now();
        for bucket in buckets {
            let Ok(mut b) = bucket.lock() else {
                return false;
            };
            if b.grant(now, bytes) < bytes {
                return false;
            }
        }
        if let Some(quota) = &self.quota {
            let taken = quota.take(bytes);
            if taken < bytes {
                quota.refund(taken);
                return false;
            }
        }
        for counters in &self.counters {
            let counter = if up { &counters.up } else { &counters.down };
            counter.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Some(allowance) = &self.allowance {
            allowance.record(up, bytes);
        }
        true
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Copies both ways until both sides finish, counting bytes as they are written;
/// each side's end is passed on as a shutdown of the other.
pub async fn splice<CR, CW, OR, OW>(
    mut client_read: CR,
    mut client_write: CW,
    mut other_read: OR,
    mut other_write: OW,
    gate: Gate,
) where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    OR: AsyncRead + Unpin,
    OW: AsyncWrite + Unpin,
{
    let up = async {
        copy_gated(&mut client_read, &mut other_write, &gate, Direction::Up).await;
        let _ = other_write.shutdown().await;
    };
    let down = async {
        copy_gated(&mut other_read, &mut client_write, &gate, Direction::Down).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The most one read takes, so that waits for tokens stay short.
const CHUNK: usize = 64 * 1024;

async fn copy_gated<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    from: &mut R,
    to: &mut W,
    gate: &Gate,
    direction: Direction,
) {
    let buckets = match direction {
        Direction::Up => &gate.up,
        Direction::Down => &gate.down,
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        if let Some(allowance) = &gate.allowance {
            allowance.wait().await;
        }
        // Never read more than the quota still allows: the bytes are taken from the
        // quota before reading and what the read did not use is given back.
        let room = gate
            .quota
            .as_ref()
            .map_or(CHUNK as u64, |q| q.take(CHUNK as u64)) as usize;
        if room == 0 {
            return;
        }
        let read = from.read(&mut buf[..room]).await;
        let used = match &read {
            Ok(n) => *n,
            Err(_) => 0,
        };
        if let Some(quota) = &gate.quota {
            quota.refund((room - used) as u64);
        }
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for bucket in buckets {
            take_tokens(bucket, n as u64).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        for counters in &gate.counters {
            let counter = match direction {
                Direction::Up => &counters.up,
                Direction::Down => &counters.down,
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(allowance) = &gate.allowance {
            allowance.record(direction == Direction::Up, n as u64);
        }
    }
}

/// Waits until `bytes` tokens were taken from `bucket`.
async fn take_tokens(bucket: &SharedBucket, bytes: u64) {
    let mut got = 0u64;
    while got < bytes {
        let wait = {
            let Ok(mut b) = bucket.lock() else { return };
            let now = Instant::now();
            got += b.grant(now, bytes - got);
            if got >= bytes {
                return;
            }
            b.wait_for(now, bytes - got)
        };
        tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
    }
}

/// A session's payment allowance: bytes relayed against the client's promises. Flows
/// wait here while the client owes more than the margin; the control stream tells the
/// client it is paused, and resumed once a promise catches up.
pub struct Allowance {
    meter: Mutex<Meter>,
    changed: Notify,
    paused: AtomicBool,
    control: mpsc::UnboundedSender<Frame>,
    /// Usage is reported to the client each time this many more bytes moved.
    report_every: u64,
    reported: AtomicU64,
}

impl Allowance {
    /// An allowance for `meter`; pause and resume notices go to `control`.
    pub fn new(meter: Meter, control: mpsc::UnboundedSender<Frame>) -> Self {
        let report_every = (meter.terms().margin / 4).max(64 * 1024);
        Self {
            meter: Mutex::new(meter),
            changed: Notify::new(),
            paused: AtomicBool::new(false),
            control,
            report_every,
            reported: AtomicU64::new(0),
        }
    }

    fn report(&self, up: u64, down: u64) {
        let _ = self.control.send(Frame::Usage { up, down });
        self.reported
            .store(up.saturating_add(down), Ordering::SeqCst);
    }

    fn record(&self, up: bool, bytes: u64) {
        let usage = self.meter.lock().ok().map(|mut m| {
            if up {
                m.record(bytes, 0);
            } else {
                m.record(0, bytes);
            }
            m.relayed()
        });
        if let Some((up, down)) = usage {
            let total = up.saturating_add(down);
            if total.saturating_sub(self.reported.load(Ordering::SeqCst)) >= self.report_every {
                self.report(up, down);
            }
        }
    }

    fn paused(&self) -> bool {
        self.meter
            .lock()
            .map(|m| m.state() != MeterState::Serving)
            .unwrap_or(true)
    }

    /// Returns at once while the client is within its margin; otherwise waits for a
    /// promise that catches up.
    pub async fn wait(&self) {
        loop {
            let notified = self.changed.notified();
            let state = self
                .meter
                .lock()
                .map(|m| m.state())
                .unwrap_or(MeterState::Serving);
            match state {
                MeterState::Serving => {
                    if self.paused.swap(false, Ordering::SeqCst) {
                        let _ = self.control.send(Frame::Resumed);
                    }
                    return;
                }
                MeterState::Paused { lag } => {
                    if !self.paused.swap(true, Ordering::SeqCst) {
                        if let Ok((up, down)) = self.meter.lock().map(|m| m.relayed()) {
                            self.report(up, down);
                        }
                        let _ = self.control.send(Frame::Paused {
                            status: Status::PaymentRequired,
                            message: format!(
                                "{lag} bytes relayed beyond your last promise: send a promise \
                                 to continue"
                            ),
                        });
                    }
                    notified.await;
                }
            }
        }
    }

    /// Takes a promise from the control stream.
    pub fn on_promise(&self, promise: &SignedReceipt) -> Result<(), PromiseError> {
        let result = self
            .meter
            .lock()
            .map_err(|_| PromiseError::WrongSession("the meter is unavailable"))?
            .on_promise(promise);
        self.changed.notify_waiters();
        result
    }

    /// The latest accepted promise: the session's ledger receipt.
    pub fn latest(&self) -> Option<VerifiedReceipt> {
        self.meter.lock().ok().and_then(|m| m.latest().cloned())
    }
}
