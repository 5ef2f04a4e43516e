//! Demo mode: a requester and two relay clients inside the node's own process send
//! real GPU jobs and real relay traffic to the node over loopback, so every screen
//! fills with real data. Everything is signed and recorded on the `demo` network,
//! which the earnings reports keep apart and never count as earnings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compute::manifest::{Binding, BindingKind, BindingRef, Job, Step};
use ed25519_dalek::SigningKey;
use ledger::{Network, PartyId};
use relay::client::RelayClient;
use relay::ticket::Ticket;
use tokio::task::AbortHandle;

use job_protocol as job_service;

/// Demo relay price, micro-credits per GiB, when the owner has set none.
pub const DEMO_PRICE_PER_GIB: u64 = 1_000_000;

/// Demo relay clients promise every quarter of this many bytes.
pub const DEMO_PROMISE_MARGIN: u64 = 1 << 20;

/// Time between demo jobs.
const JOB_EVERY: Duration = Duration::from_secs(15);

/// How long each demo relay session streams, and its rate.
const SESSION: Duration = Duration::from_secs(20);
const SESSION_RATE: u64 = 512 * 1024;

/// The demo kernel: a hash per element, a few hundred rounds each.
const KERNEL: &str = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x * 2654435761u + 12345u;
    for (var i = 0u; i < 256u; i = i + 1u) {
        x = (x ^ (x >> 15u)) * 2246822519u;
    }
    out[id.x] = x;
}
";

fn random_key() -> SigningKey {
    let mut seed = [0u8; 32];
    // Without OS randomness the demo still runs, under a fixed demo key.
    if getrandom::fill(&mut seed).is_err() {
        seed = [7; 32];
    }
    SigningKey::from_bytes(&seed)
}

/// A demo job over `workgroups` workgroups of 64.
pub fn job(workgroups: u32) -> Job {
    Job {
        source: KERNEL.to_owned(),
        steps: vec![Step {
            entry_point: "main".into(),
            workgroups: [workgroups, 1, 1],
            repeat: 1,
        }],
        bindings: vec![Binding {
            at: BindingRef {
                group: 0,
                binding: 0,
            },
            kind: BindingKind::StorageReadWrite,
            bytes: vec![0; workgroups as usize * 64 * 4],
        }],
        outputs: vec![BindingRef {
            group: 0,
            binding: 0,
        }],
    }
}

/// Starts the demo clients against the node `node` listening at `listening`.
pub fn start(node: PartyId, listening: SocketAddr, network: &str) -> Vec<AbortHandle> {
    let port = listening.port();
    let Some(ticket) = Ticket::new(node, vec![SocketAddr::from(([127, 0, 0, 1], port))]) else {
        return Vec::new();
    };
    let network = network.to_owned();
    let jobs_ticket = ticket.clone();
    // A moment for the policy's first decisions, so the first attempts are served.
    let requester = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        requester(jobs_ticket, network).await;
    });
    let clients = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        relay_clients(ticket).await;
    });
    vec![requester.abort_handle(), clients.abort_handle()]
}

async fn requester(ticket: Ticket, network: String) {
    let key = random_key();
    let Ok(network) = Network::new(network) else {
        return;
    };
    let node = ticket.node;
    let mut round = 0u32;
    loop {
        // Jobs of a few sizes, so the charts are not flat.
        let job = job(256 << (round % 4));
        round = round.wrapping_add(1);
        let outcome = async {
            let card = job_service::rate_card(&ticket, &key).await?;
            let price = card.price(job.total_workgroups());
            let order = job_service::sign_order(
                &key,
                node,
                network.clone(),
                &job,
                price,
                Duration::from_secs(3600),
            )
            .map_err(|e| job_service::SubmitError::Protocol(e.to_string()))?;
            job_service::submit(&ticket, &key, &job, order, &mut |_| {}).await
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!("demo requester: {e}");
        }
        tokio::time::sleep(JOB_EVERY).await;
    }
}

async fn relay_clients(ticket: Ticket) {
    let listener_key = random_key();
    let dialer_key = random_key();
    let listener_id = PartyId::of(&listener_key);
    loop {
        if let Err(e) = session(&ticket, &listener_key, &dialer_key, listener_id).await {
            tracing::warn!("demo relay clients: {e}");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// One peer-relay session: the dialer streams to the listener for a while.
async fn session(
    ticket: &Ticket,
    listener_key: &SigningKey,
    dialer_key: &SigningKey,
    listener_id: PartyId,
) -> Result<(), relay::client::ClientError> {
    let listener = Arc::new(RelayClient::connect(ticket, listener_key).await?);
    listener.listen().await?;
    let sink = listener.clone();
    let accepting = tokio::spawn(async move {
        while let Ok((_, _send, mut recv)) = sink.accept_peer().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(Some(_)) = recv.read(&mut buf).await {}
            });
        }
    });
    let dialer = RelayClient::connect(ticket, dialer_key).await?;
    let (mut send, _recv) = dialer.dial(listener_id).await?;
    let chunk = vec![0x5au8; 16 * 1024];
    let per_chunk = Duration::from_secs_f64(chunk.len() as f64 / SESSION_RATE as f64);
    let end = tokio::time::Instant::now() + SESSION;
    while tokio::time::Instant::now() < end {
        if send.write_all(&chunk).await.is_err() {
            break;
        }
        tokio::time::sleep(per_chunk).await;
    }
    let _ = send.finish();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(dialer);
    accepting.abort();
    drop(listener);
    Ok(())
}
