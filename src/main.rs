use clap::{Parser, Subcommand};
use live2vod::{api, bench, broker, demo, fold, relay, replay, sim, worker};

/// live2vod: Alibaba Cloud VOD live-recording callbacks -> Kafka -> aggregates and
/// exactly-once-in-effect follow-up work (transcode, compose tracking, play-info refresh).
///
/// Start with `live2vod demo`: it runs everything in one process on an embedded broker.
#[derive(Parser, Debug)]
#[command(name = "live2vod", version, about, long_about = None)]
struct Cli {
    /// Serve `/metrics`, `/healthz` and `/readyz` on this address (any role). Without it,
    /// roles with an HTTP listener of their own serve them there.
    #[arg(
        long,
        global = true,
        env = "LIVE2VOD_METRICS_LISTEN",
        value_name = "ADDR"
    )]
    metrics_listen: Option<std::net::SocketAddr>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Host librdkafka's embedded mock Kafka cluster; prints its bootstrap address first.
    Broker(broker::Args),
    /// HTTP endpoint for VOD callbacks: verify, keep the raw body, write it to Kafka.
    Relay(relay::Args),
    /// Fold callbacks into aggregates, snapshot them, emit commands.
    Fold(fold::Args),
    /// Execute commands against the VOD OpenAPI; feed outcomes back as events.
    Worker(worker::Args),
    /// Serve the aggregates over HTTP; accept manual transcode requests.
    Api(api::Args),
    /// Rebuild aggregates from the callbacks topic without side effects.
    Replay(replay::Args),
    /// Simulate Alibaba Live + VOD: post callbacks, serve the OpenAPI, verify the result.
    Sim(sim::Args),
    /// Everything in one process on an embedded broker, with the simulator.
    Demo(demo::Args),
    /// Kafka topic administration (`topics create`).
    #[command(subcommand)]
    Topics(live2vod::kafka::cli::TopicsCommand),
    /// Benchmarks; the last stdout line is one JSON object of figures.
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    live2vod::telemetry::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        if let Some(addr) = cli.metrics_listen {
            live2vod::metrics::install();
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--metrics-listen): {e}"))?;
            live2vod::http::set_separate_ops_listener();
            let ops = live2vod::http::ops_router(live2vod::http::process_health());
            // Lives as long as the role: the process ends when the role returns.
            tokio::spawn(live2vod::http::serve_on(
                listener,
                ops,
                std::future::pending::<()>(),
            ));
        }
        match cli.command {
            Command::Broker(a) => broker::run(a).await,
            Command::Relay(a) => relay::run(a).await,
            Command::Fold(a) => fold::run(a).await,
            Command::Worker(a) => worker::run(a).await,
            Command::Api(a) => api::run(a).await,
            Command::Replay(a) => replay::run(a).await,
            Command::Sim(a) => sim::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Topics(t) => live2vod::kafka::cli::run(t).await,
            Command::Bench(b) => bench::run(b).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Catches clashing flags across roles, e.g. a role defining its own `--metrics-listen`
    /// next to the global one.
    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn metrics_listen_is_accepted_by_every_role() {
        let cli = Cli::try_parse_from([
            "live2vod",
            "relay",
            "--no-auth",
            "--metrics-listen",
            "127.0.0.1:9100",
        ])
        .expect("valid");
        assert_eq!(
            cli.metrics_listen,
            Some("127.0.0.1:9100".parse().expect("addr"))
        );
        let cli = Cli::try_parse_from(["live2vod", "broker", "--metrics-listen", "127.0.0.1:9101"])
            .expect("valid");
        assert!(cli.metrics_listen.is_some());
    }
}
