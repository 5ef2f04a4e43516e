//! The node's side of the job service: each connection the node's router hands over
//! under the jobs ALPN, each stream one request (the protocol is `job_protocol`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compute::admission::Caps;
use compute::supervisor::JobResult;
use tokio::sync::mpsc;

use crate::gpu_lane::{GpuLane, LaneEvent, Queued};
use crate::router::{ProtocolHandler, Serving};
use job_protocol::{
    self as job_service, Code, FrameError, OrderTerms, OutputWire, Refusal, Reply, Request,
};

/// What this node admits, from its config.
pub fn caps(config: &crate::config::Config) -> Caps {
    Caps {
        total_buffer_bytes: u64::from(config.gpu.max_job_memory_mb) << 20,
    }
}

/// Requests a connection may have open at once.
const MAX_STREAMS: usize = 8;

/// Deadline for a request's bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the service needs from the node.
pub struct JobService {
    /// What orders are checked against.
    pub terms: OrderTerms,
    /// What admission allows.
    pub caps: Caps,
    /// The queue.
    pub lane: Arc<GpuLane>,
    /// Why the GPU is not lent now (`None`: it is), for `queued` replies.
    pub waiting_for: Arc<Mutex<Option<String>>>,
    /// GPU lending is switched off in the settings: jobs are refused.
    pub gpu_disabled: bool,
    /// Orders accepted since the node started (the ledger refuses replays for good).
    pub seen: Mutex<HashSet<[u8; 32]>>,
    /// Where finished orders go: the ledger writer.
    pub finished: mpsc::UnboundedSender<ledger::VerifiedReceipt>,
    /// Requesters' connections at once (`MAX_CONNECTIONS`): so requesters cannot take
    /// the endpoint's room from relay clients.
    pub connections: Arc<tokio::sync::Semaphore>,
}

/// Requesters' connections at once.
pub const MAX_CONNECTIONS: usize = 256;

impl ProtocolHandler for JobService {
    /// Serves a requester's connection, each stream one request, until it closes.
    fn accept(self: Arc<Self>, conn: quinn::Connection) -> Serving {
        Box::pin(async move {
            let Ok(_connection) = self.connections.clone().try_acquire_owned() else {
                conn.close(
                    quinn::VarInt::from_u32(9),
                    b"this node serves as many requesters as it can: try again later",
                );
                return;
            };
            let open = Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS));
            while let Ok((send, recv)) = conn.accept_bi().await {
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    let mut send = send;
                    let busy = Refusal {
                        code: Code::QueueFull,
                        message: format!("at most {MAX_STREAMS} requests per connection"),
                    };
                    let _ = job_service::write_frame(&mut send, &Reply::Refused(busy)).await;
                    let _ = send.finish();
                    continue;
                };
                let service = self.clone();
                tokio::spawn(async move {
                    service.serve_stream(send, recv).await;
                    drop(permit);
                });
            }
        })
    }
}

impl JobService {
    async fn serve_stream(&self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let replies = match self.answer(&mut send, &mut recv).await {
            Ok(()) => return,
            Err(refusal) => {
                tracing::info!(code = %refusal.code.name(), "job refused: {}", refusal.message);
                Reply::Refused(refusal)
            }
        };
        let _ = job_service::write_frame(&mut send, &replies).await;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }

    /// Handles one request; the error is the refusal to send.
    async fn answer(
        &self,
        send: &mut quinn::SendStream,
        recv: &mut quinn::RecvStream,
    ) -> Result<(), Refusal> {
        let request = tokio::time::timeout(READ_TIMEOUT, job_service::read_frame(recv))
            .await
            .map_err(|_| refusal(Code::MalformedRequest, "no request arrived in time"))?
            .map_err(|e| match e {
                FrameError::Json(e) => refusal(
                    Code::MalformedManifest,
                    format!("the request is not a valid job request: {e}"),
                ),
                other => refusal(Code::MalformedRequest, other.to_string()),
            })?;
        let (order, wire) = match request {
            Request::RateCard => {
                let card = Reply::RateCard(self.terms.rates.clone());
                let _ = job_service::write_frame(send, &card).await;
                let _ = send.finish();
                return Ok(());
            }
            Request::Submit { order, job } => (order, job),
        };
        if self.gpu_disabled {
            return Err(refusal(
                Code::NotOffered,
                "this node does not lend its GPU (gpu.enabled is false)",
            ));
        }
        let mut job = job_service::job_from_wire(&wire, &self.caps)?;
        tokio::time::timeout(
            READ_TIMEOUT,
            job_service::read_inputs(recv, &wire, &mut job),
        )
        .await
        .map_err(|_| refusal(Code::InputsTruncated, "the inputs did not arrive in time"))??;
        let verified = job_service::check_order(&order, &job, &self.terms, job_service::now_ms())?;
        let job = job_service::admit(job, &self.caps)?;
        let reference = verified.receipt().reference;
        // The order's reference names the job in every line about it.
        let job_id = ledger::hex(&reference[..6]);
        let fresh = self
            .seen
            .lock()
            .map(|mut seen| seen.insert(reference))
            .unwrap_or(false);
        if !fresh {
            return Err(refusal(
                Code::Replayed,
                "this order was already accepted: sign a new order for each run",
            ));
        }
        let (events, mut heard) = mpsc::unbounded_channel();
        let position = self
            .lane
            .enqueue(Queued::new(job, verified.clone(), events))?;
        let waiting_for = self.waiting_for.lock().ok().and_then(|w| w.clone());
        tracing::info!(
            job = %job_id,
            requester = %verified.receipt().counterparty,
            amount_micro = verified.receipt().amount.0,
            position,
            "job accepted and queued{}",
            waiting_for.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
        );
        let queued = Reply::Queued {
            position,
            waiting_for,
        };
        let _ = job_service::write_frame(send, &queued).await;
        let mut told_running = false;
        while let Some(event) = heard.recv().await {
            match event {
                LaneEvent::Running => {
                    if !told_running {
                        told_running = true;
                        tracing::debug!(job = %job_id, "job running on the GPU");
                        let _ = job_service::write_frame(send, &Reply::Running).await;
                    }
                }
                LaneEvent::Failed(refusal) => {
                    tracing::warn!(job = %job_id, code = %refusal.code.name(), "job failed: {}", refusal.message);
                    return Err(refusal);
                }
                LaneEvent::Done(result) => {
                    // The credit is recorded whether or not the requester is still there
                    // to take the outputs: the work was done for a signed order.
                    tracing::info!(
                        job = %job_id,
                        gpu_time_ms = result.gpu_time_ms,
                        workgroups = result.workgroups,
                        slices = result.slices,
                        "job done; sending its outputs"
                    );
                    let _ = self.finished.send(verified);
                    send_outputs(send, &result).await;
                    return Ok(());
                }
            }
        }
        Err(refusal(Code::NodeStopping, "the node stopped"))
    }
}

/// Sends a finished job's `Done` reply and its outputs' bytes, and waits (briefly)
/// for the requester to have them.
async fn send_outputs(send: &mut quinn::SendStream, result: &JobResult) {
    let outputs = result
        .outputs
        .iter()
        .map(|o| OutputWire {
            group: o.binding.group,
            binding: o.binding.binding,
            bytes: o.bytes,
            blake3: o.blake3.clone(),
        })
        .collect();
    let done = Reply::Done {
        job_digest: result.job_digest.clone(),
        outputs,
        class: result.class.clone(),
        gpu_time_ms: result.gpu_time_ms,
        workgroups: result.workgroups,
        slices: result.slices,
    };
    if job_service::write_frame(send, &done).await.is_ok() {
        for o in &result.outputs {
            if send.write_all(&o.data).await.is_err() {
                break;
            }
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(10), send.stopped()).await;
}

fn refusal(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}
