//! GPU jobs over QUIC: the node's job service and the requester's side of it.
//!
//! A requester connects to the node's port with ALPN [`ALPN`] (the relay hands such
//! connections over), opens one bidirectional stream per request and sends a
//! length-prefixed JSON [`Request`]. For a job, the request carries a **signed order**
//! and the job (WGSL, steps, outputs and the size of every buffer), followed by the
//! buffers' bytes, exactly as many as declared, then the end of the stream.
//!
//! The order is a `gpu_job` receipt signed by the requester: payee the node, units the
//! job's workgroups, amount the price, and as reference
//! `BLAKE3("spare-order-v1" ‖ job digest ‖ expiry)`, so the signature covers the exact
//! job and the expiry. The node checks it, runs admission and its rate card, queues
//! the job and answers with [`Reply`] frames: `queued`, `running`, then `done` with the
//! outputs' digests followed by the outputs' bytes, or `refused` with a [`Code`] and a
//! sentence. When the job is done the order itself becomes the ledger entry.
//!
//! Frames: a 4-byte big-endian length, then that many bytes of JSON (at most
//! [`MAX_HEADER`]). Every length is checked before anything is allocated.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compute::admission::{self, Caps};
use compute::manifest::{Binding, BindingKind, BindingRef, Job, Step};
use ed25519_dalek::SigningKey;
use receipt::{EntryKind, MicroCredits, Network, PartyId, Receipt, SignedReceipt, VerifiedReceipt};
use relay::ticket::Ticket;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The job service's ALPN on the node's QUIC port.
pub const ALPN: &[u8] = b"spare-jobs/1";

/// The largest JSON frame.
pub const MAX_HEADER: usize = 1 << 20;

/// How far an order's expiry may lie after its issue time.
pub const MAX_ORDER_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How far in the future an order's issue time may be (clock skew).
const CLOCK_SKEW: Duration = Duration::from_secs(120);

/// Deadline for a request's header and bytes to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request was refused: a stable name for programs, with a sentence for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The request frame is not valid JSON of the expected shape.
    MalformedRequest,
    /// The job (WGSL, steps, bindings) is not well formed.
    MalformedManifest,
    /// The order could not be decoded.
    MalformedOrder,
    /// The order's signature does not verify.
    BadSignature,
    /// The order names another node as payee.
    WrongNode,
    /// The order is for another network.
    WrongNetwork,
    /// The order is not a GPU job order, or its units are not the job's workgroups.
    WrongTerms,
    /// The order's expiry has passed (or lies too far ahead).
    Expired,
    /// The order was signed for a different job.
    DigestMismatch,
    /// The order pays less than the node's rate card asks.
    Underpriced,
    /// More input bytes arrived than the job declared.
    InputsTooLarge,
    /// Fewer input bytes arrived than the job declared.
    InputsTruncated,
    /// Admission refused the job (shader, limits, budget).
    NotAdmitted,
    /// This order was already accepted once.
    Replayed,
    /// The queue is full.
    QueueFull,
    /// The node does not lend its GPU.
    NotOffered,
    /// The job failed on the GPU.
    JobFailed,
    /// The node is stopping.
    NodeStopping,
    /// This job lost the node's GPU worker before (it hung or killed it): never again.
    JobBlocked,
    /// The requester's jobs lost the node's GPU worker: refused for a while.
    CoolingOff,
}

impl Code {
    /// The stable name, as on the wire.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A refusal: the code and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({})", code.name())]
pub struct Refusal {
    /// What kind of refusal.
    pub code: Code,
    /// The sentence.
    pub message: String,
}

impl Refusal {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A signed order as sent: the receipt bytes and signature, hex, and the expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderWire {
    /// The receipt's canonical bytes, hex.
    pub receipt: String,
    /// The requester's signature, hex.
    pub signature: String,
    /// When the order stops being valid, Unix milliseconds.
    pub expires_at_ms: u64,
}

/// One buffer as declared: where it binds, how, and how many bytes follow for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingWire {
    /// Bind group.
    pub group: u32,
    /// Binding.
    pub binding: u32,
    /// How the shader uses it.
    pub kind: BindingKind,
    /// Its size: exactly this many bytes follow the header for it.
    pub bytes: u64,
}

/// A job as sent, its buffers' bytes following the header in binding order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobWire {
    /// WGSL source.
    pub source: String,
    /// Dispatches in order.
    pub steps: Vec<Step>,
    /// Buffers.
    pub bindings: Vec<BindingWire>,
    /// Which bindings come back.
    pub outputs: Vec<BindingRef>,
}

impl JobWire {
    /// The header for `job`: everything but the buffers' bytes, which follow it.
    pub fn of(job: &Job) -> Self {
        Self {
            source: job.source.clone(),
            steps: job.steps.clone(),
            bindings: job
                .bindings
                .iter()
                .map(|b| BindingWire {
                    group: b.at.group,
                    binding: b.at.binding,
                    kind: b.kind,
                    bytes: b.bytes.len() as u64,
                })
                .collect(),
            outputs: job.outputs.clone(),
        }
    }
}

/// What a requester asks.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The node's prices and limits.
    RateCard,
    /// Run a job.
    Submit {
        /// The signed order.
        order: OrderWire,
        /// The job.
        job: JobWire,
    },
}

/// The node's prices and limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCard {
    /// The network the node takes orders for.
    pub network: String,
    /// Micro-credits per million workgroups (rounded up per job).
    pub price_per_million_workgroups: u64,
    /// The most bytes one job's buffers may take together.
    pub max_job_bytes: u64,
}

impl RateCard {
    /// The price of `workgroups` at this rate.
    pub fn price(&self, workgroups: u64) -> u64 {
        let micro = u128::from(workgroups) * u128::from(self.price_per_million_workgroups);
        u64::try_from(micro.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// One output as reported before its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputWire {
    /// Bind group.
    pub group: u32,
    /// Binding.
    pub binding: u32,
    /// Its size; this many bytes follow.
    pub bytes: u64,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
}

/// What the node answers, one or more frames per request.
// `Done` is the large one and every frame is short-lived: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The rate card.
    RateCard(RateCard),
    /// Accepted and waiting; `position` jobs are ahead (0: next).
    Queued {
        /// Jobs ahead of this one.
        position: usize,
        /// Why it waits, when the GPU is not lent now.
        waiting_for: Option<String>,
    },
    /// Running now.
    Running,
    /// Finished: outputs' bytes follow in this order.
    Done {
        /// The job digest, hex.
        job_digest: String,
        /// Outputs.
        outputs: Vec<OutputWire>,
        /// What it ran on.
        class: compute::gpu::ExecClass,
        /// GPU time in milliseconds.
        gpu_time_ms: f64,
        /// Workgroups run.
        workgroups: u64,
        /// Slices it took.
        slices: u64,
    },
    /// Refused or failed.
    Refused(Refusal),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    out: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes()).await?;
    out.write_all(&json).await
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended early.
    #[error("the stream ended or failed: {0}")]
    Io(#[from] std::io::Error),
    /// Too long.
    #[error("a frame of {0} bytes is over the {MAX_HEADER}-byte limit")]
    TooLong(usize),
    /// Not the expected JSON.
    #[error("not a valid frame: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads one frame.
pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    input: &mut R,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER {
        return Err(FrameError::TooLong(len));
    }
    let mut json = vec![0u8; len];
    input.read_exact(&mut json).await?;
    Ok(serde_json::from_slice(&json)?)
}

/// The reference an order signs: the job and the expiry.
pub fn order_reference(job_digest: &[u8; 32], expires_at_ms: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"spare-order-v1");
    h.update(job_digest);
    h.update(&expires_at_ms.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The requester signs an order for `job` on `node` at `amount` micro-credits, valid
/// from now for `lifetime`.
pub fn sign_order(
    key: &SigningKey,
    node: PartyId,
    network: Network,
    job: &Job,
    amount: u64,
    lifetime: Duration,
) -> Result<OrderWire, receipt::ReceiptError> {
    let issued = now_ms();
    let expires_at_ms = issued.saturating_add(lifetime.as_millis() as u64);
    sign_order_at(key, node, network, job, amount, issued, expires_at_ms)
}

/// The same with the issue and expiry times given, in Unix milliseconds.
pub fn sign_order_at(
    key: &SigningKey,
    node: PartyId,
    network: Network,
    job: &Job,
    amount: u64,
    issued_at_ms: u64,
    expires_at_ms: u64,
) -> Result<OrderWire, receipt::ReceiptError> {
    let signed = Receipt {
        kind: EntryKind::GpuJob,
        network,
        payee: node,
        counterparty: PartyId::of(key),
        units: job.total_workgroups(),
        amount: MicroCredits(i64::try_from(amount).unwrap_or(i64::MAX)),
        issued_at_ms: i64::try_from(issued_at_ms).unwrap_or(i64::MAX),
        reference: order_reference(&job.digest(), expires_at_ms),
    }
    .sign(key)?;
    Ok(OrderWire {
        receipt: receipt::hex(&signed.bytes),
        signature: receipt::hex(&signed.signature),
        expires_at_ms,
    })
}

/// The job a header describes, with its buffers' bytes still to read.
pub fn job_from_wire(wire: &JobWire, caps: &Caps) -> Result<Job, Refusal> {
    if wire.steps.is_empty() {
        return Err(Refusal::new(
            Code::MalformedManifest,
            "the job has no steps: give at least one entry point and grid",
        ));
    }
    let mut total = 0u64;
    for b in &wire.bindings {
        total = total.saturating_add(b.bytes);
    }
    if total > caps.total_buffer_bytes {
        return Err(Refusal::new(
            Code::InputsTooLarge,
            format!(
                "the job's buffers take {total} bytes; this node takes at most {} per job",
                caps.total_buffer_bytes
            ),
        ));
    }
    Ok(Job {
        source: wire.source.clone(),
        steps: wire.steps.clone(),
        bindings: wire
            .bindings
            .iter()
            .map(|b| Binding {
                at: BindingRef {
                    group: b.group,
                    binding: b.binding,
                },
                kind: b.kind,
                bytes: Vec::new(),
            })
            .collect(),
        outputs: wire.outputs.clone(),
    })
}

/// Reads exactly the declared bytes of every binding, then checks the stream ends.
pub async fn read_inputs<R: AsyncRead + Unpin>(
    input: &mut R,
    wire: &JobWire,
    job: &mut Job,
) -> Result<(), Refusal> {
    for (declared, binding) in wire.bindings.iter().zip(job.bindings.iter_mut()) {
        // Sizes were checked against the node's budget before this allocation.
        let mut bytes = vec![0u8; declared.bytes as usize];
        input.read_exact(&mut bytes).await.map_err(|_| {
            Refusal::new(
                Code::InputsTruncated,
                format!(
                    "the stream ended before the {} bytes declared for @group({}) @binding({})",
                    declared.bytes, declared.group, declared.binding
                ),
            )
        })?;
        binding.bytes = bytes;
    }
    let mut extra = [0u8; 1];
    match input.read(&mut extra).await {
        Ok(0) => Ok(()),
        Ok(_) => Err(Refusal::new(
            Code::InputsTooLarge,
            "more input bytes arrived than the job's bindings declare: send exactly the \
             declared sizes, then finish the stream",
        )),
        Err(e) => Err(Refusal::new(
            Code::InputsTruncated,
            format!("the stream failed: {e}"),
        )),
    }
}

/// What the node checks an order against.
#[derive(Clone, Debug)]
pub struct OrderTerms {
    /// This node.
    pub node: PartyId,
    /// The rate card.
    pub rates: RateCard,
}

/// Checks an order against the job and the node's terms; on success the order is
/// the verified receipt that the ledger entry will hold.
pub fn check_order(
    order: &OrderWire,
    job: &Job,
    terms: &OrderTerms,
    now_ms: u64,
) -> Result<VerifiedReceipt, Refusal> {
    let malformed = |what: &str| {
        Refusal::new(
            Code::MalformedOrder,
            format!("the order's {what} is not valid hex of the right length"),
        )
    };
    let bytes = receipt::unhex(&order.receipt).ok_or_else(|| malformed("receipt"))?;
    let signature: [u8; 64] = receipt::unhex(&order.signature)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| malformed("signature"))?;
    let verified = SignedReceipt { bytes, signature }
        .verify()
        .map_err(|e| match e {
            receipt::ReceiptError::BadSignature(_) => Refusal::new(
                Code::BadSignature,
                "the order's signature does not verify: sign the order with the requester's key",
            ),
            other => Refusal::new(
                Code::MalformedOrder,
                format!("the order is invalid: {other}"),
            ),
        })?;
    let r = verified.receipt();
    if r.kind != EntryKind::GpuJob {
        return Err(Refusal::new(
            Code::WrongTerms,
            format!("the order is a {} receipt, not a gpu_job order", r.kind),
        ));
    }
    if r.payee != terms.node {
        return Err(Refusal::new(
            Code::WrongNode,
            format!(
                "the order pays node {}, but this is node {}: sign the order for the node in the ticket",
                r.payee, terms.node
            ),
        ));
    }
    if r.network.as_str() != terms.rates.network {
        return Err(Refusal::new(
            Code::WrongNetwork,
            format!(
                "the order is for network \"{}\"; this node takes orders for \"{}\"",
                r.network, terms.rates.network
            ),
        ));
    }
    let issued = u64::try_from(r.issued_at_ms).unwrap_or(0);
    if now_ms > order.expires_at_ms {
        return Err(Refusal::new(
            Code::Expired,
            format!(
                "the order expired {} s ago: sign a new one",
                (now_ms - order.expires_at_ms) / 1000
            ),
        ));
    }
    if issued > now_ms.saturating_add(CLOCK_SKEW.as_millis() as u64)
        || order.expires_at_ms.saturating_sub(issued) > MAX_ORDER_LIFETIME.as_millis() as u64
    {
        return Err(Refusal::new(
            Code::Expired,
            "the order's times are out of range: it may be issued at most 2 minutes ahead of \
             this node's clock and live at most 24 hours",
        ));
    }
    if r.reference != order_reference(&job.digest(), order.expires_at_ms) {
        return Err(Refusal::new(
            Code::DigestMismatch,
            "the order was signed for a different job or expiry than the one sent",
        ));
    }
    let workgroups = job.total_workgroups();
    if r.units != workgroups {
        return Err(Refusal::new(
            Code::WrongTerms,
            format!(
                "the order is for {} workgroups but the job has {workgroups}",
                r.units
            ),
        ));
    }
    let asked = terms.rates.price(workgroups);
    if (r.amount.0.max(0) as u64) < asked {
        return Err(Refusal::new(
            Code::Underpriced,
            format!(
                "the order pays {} µcredits; this node asks {asked} for {workgroups} workgroups \
                 ({} per million)",
                r.amount.0, terms.rates.price_per_million_workgroups
            ),
        ));
    }
    Ok(verified)
}

/// Admission, with the refusal the requester sees.
pub fn admit(job: Job, caps: &Caps) -> Result<admission::AdmittedJob, Refusal> {
    admission::AdmittedJob::admit(job, caps)
        .map_err(|refused| Refusal::new(Code::NotAdmitted, refused.to_string()))
}

/// Why a submission did not produce a result, on the requester's side.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The node could not be reached.
    #[error(transparent)]
    Connect(#[from] relay::client::ClientError),
    /// The node refused the job, or it failed there.
    #[error("the node refused the job: {0}")]
    Refused(Refusal),
    /// The exchange broke off or was not understood.
    #[error("{0}")]
    Protocol(String),
}

/// A finished job as the requester receives it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `done` reply.
    pub done: Reply,
    /// Each output with its bytes, checked against its digest.
    pub outputs: Vec<(OutputWire, Vec<u8>)>,
}

fn protocol(what: impl std::fmt::Display) -> SubmitError {
    SubmitError::Protocol(what.to_string())
}

/// Asks a node for its rate card.
pub async fn rate_card(ticket: &Ticket, key: &SigningKey) -> Result<RateCard, SubmitError> {
    let (_endpoint, conn) = relay::client::connect_service(ticket, key, ALPN).await?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(protocol)?;
    write_frame(&mut send, &Request::RateCard)
        .await
        .map_err(protocol)?;
    let _ = send.finish();
    let reply = tokio::time::timeout(READ_TIMEOUT, read_frame::<_, Reply>(&mut recv))
        .await
        .map_err(|_| protocol("the node did not answer in time"))?
        .map_err(protocol)?;
    conn.close(0u32.into(), b"done");
    match reply {
        Reply::RateCard(card) => Ok(card),
        Reply::Refused(r) => Err(SubmitError::Refused(r)),
        other => Err(protocol(format!("unexpected reply {other:?}"))),
    }
}

/// Sends a job with its order and waits for the result. `on_reply` hears of
/// `queued` and `running`.
pub async fn submit(
    ticket: &Ticket,
    key: &SigningKey,
    job: &Job,
    order: OrderWire,
    on_reply: &mut (dyn FnMut(&Reply) + Send),
) -> Result<Received, SubmitError> {
    let (_endpoint, conn) = relay::client::connect_service(ticket, key, ALPN).await?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(protocol)?;
    let wire = JobWire::of(job);
    write_frame(&mut send, &Request::Submit { order, job: wire })
        .await
        .map_err(protocol)?;
    // The node may refuse before reading the bytes; its answer then says why.
    let mut sent = Ok(());
    for b in &job.bindings {
        sent = send.write_all(&b.bytes).await;
        if sent.is_err() {
            break;
        }
    }
    if sent.is_ok() {
        let _ = send.finish();
    }
    let result = loop {
        let reply = match read_frame::<_, Reply>(&mut recv).await {
            Ok(reply) => reply,
            Err(e) => {
                break Err(match conn.close_reason() {
                    Some(reason) => protocol(format!("the connection closed: {reason}")),
                    None => protocol(e),
                });
            }
        };
        match reply {
            Reply::Done { ref outputs, .. } => {
                let mut received = Vec::new();
                for o in outputs {
                    if o.bytes > compute::admission::MAX_BUFFER_BYTES {
                        break;
                    }
                    let mut bytes = vec![0u8; o.bytes as usize];
                    recv.read_exact(&mut bytes).await.map_err(protocol)?;
                    if blake3::hash(&bytes).to_hex().as_str() != o.blake3 {
                        return Err(protocol(format!(
                            "output @group({}) @binding({}) does not match its digest",
                            o.group, o.binding
                        )));
                    }
                    received.push((o.clone(), bytes));
                }
                if received.len() != outputs.len() {
                    break Err(protocol("an output is larger than any buffer can be"));
                }
                break Ok(Received {
                    done: reply,
                    outputs: received,
                });
            }
            Reply::Refused(r) => break Err(SubmitError::Refused(r)),
            other => on_reply(&other),
        }
    };
    conn.close(0u32.into(), b"done");
    result
}
