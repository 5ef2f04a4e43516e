//! `spare daemon`: the node without a GUI, until interrupted; and the text form of
//! its status for `spare status`.

use anyhow::Context as _;

use node::{Node, NodeOptions, ResourceState, Status};

/// Runs a node until Ctrl-C or SIGTERM, serving the control channel.
pub fn run(options: NodeOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let data_dir = options.data_dir.clone();
        let demo = options.demo;
        let mut node = Node::start(options).await?;
        node.serve_control(&data_dir)?;
        let status = node.handle().status();
        tracing::info!(
            "node {} listening on {} (UDP){}; ticket {}",
            status.node_id,
            status.listening,
            if demo {
                ", demo mode: demo work is recorded apart, never as earnings"
            } else {
                ""
            },
            status.ticket
        );
        tracing::info!("control channel in {}", data_dir.display());
        stopped().await;
        tracing::info!("stopping: interrupted");
        // Stopping joins threads that may wait on a job's last slice.
        tokio::task::block_in_place(|| node.shutdown());
        anyhow::Ok(())
    })
}

/// Waits for Ctrl-C, or SIGTERM on Unix (how service managers stop a daemon).
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn credits(micro: i64) -> String {
    ledger::MicroCredits(micro).to_string()
}

fn line(name: &str, state: &ResourceState) -> String {
    match &state.reason {
        None => format!("{name:<10} lending"),
        Some(reason) => format!("{name:<10} {}: {reason}", state.state),
    }
}

/// `spare status` as text.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    let mut push = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    push(format!(
        "node {} on network {}{}",
        s.node_id,
        s.network,
        if s.demo { " (demo mode)" } else { "" }
    ));
    push(line("GPU", &s.gpu.state));
    push(format!(
        "           {} queued, {}, {} done, {} failed; lent {:.0} % of the last minute",
        s.gpu.queued_jobs,
        if s.gpu.running {
            "one running"
        } else if s.gpu.yielded {
            "one waiting to resume"
        } else {
            "none running"
        },
        s.gpu.jobs_done,
        s.gpu.jobs_failed,
        s.gpu.busy_percent
    ));
    if let Some(stopped) = &s.gpu.runner_stopped {
        push(format!("           runner stopped: {stopped}"));
    }
    push(line("bandwidth", &s.bandwidth.state));
    push(format!(
        "           {} clients, up {} B/s, down {} B/s{}",
        s.bandwidth.clients,
        s.bandwidth.up_bytes_per_s,
        s.bandwidth.down_bytes_per_s,
        s.bandwidth
            .quota_percent
            .map(|p| format!(", quota {p} % used"))
            .unwrap_or_default()
    ));
    push(format!(
        "today      earned {} (GPU {}, bandwidth {}){}",
        credits(s.earned_today_micro),
        credits(s.gpu.earned_today_micro),
        credits(s.bandwidth.earned_today_micro),
        if s.gpu.demo_today_micro + s.bandwidth.demo_today_micro > 0 {
            format!(
                "; demo {} (not earnings)",
                credits(s.gpu.demo_today_micro + s.bandwidth.demo_today_micro)
            )
        } else {
            String::new()
        }
    ));
    push(format!("ticket     {}", s.ticket));
    out
}
